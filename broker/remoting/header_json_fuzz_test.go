package remoting

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"strconv"
	"testing"
)

// FuzzJSONExtMatchesEncodingJSON: decodeJSONExt scans extFields instead of
// parsing them; for every valid JSON object of at most MaxExtFields
// members it must give what encoding/json's decoding into a map does
// (null members left out, the last of a repeated name counting, a value
// that is not a scalar refused).
func FuzzJSONExtMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `null`, `{"a":"1","b":2,"c":true,"d":null}`, `{ "a" : "x" , "a" : null , "a":"y" }`,
		`{"k\u00e9y":"v\"al\\ue","\ud83d\ude00":"\n"}`, `{"a":{"b":1}}`, `{"a":[1,"]"]}`, `{"a":-1.5e3,"b":false}`,
		"{\"a\":\"\xff\xfe\"}", `{"a":"}","b":"{"}`, `{"a":{},"a":"1"}`, `{"a":null,"a":"y"}`,
		`{"a":{"b":"\"}\\"},"c":"d"}`, `{"a":["\\",{"x":"]}"}],"b":"1"}`, "{\n\t\"a\"\r\n:\t-0 ,\"b\":true}",
		`{"\\":"\\\"","\"":""}`, `{"":"","a":""}`, "{\"\xed\xa0\x80\":\"\\udc00\"}", `{"a":1e-7,"b":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		want, wantErr, ok := referenceExt(raw)
		if !ok {
			return
		}
		got, derr := decodeJSONExt(raw)
		switch {
		case wantErr || len(want) > MaxExtFields:
			if derr == nil {
				t.Fatalf("%q: accepted as %q; want it refused", raw, got)
			}
		case derr != nil:
			t.Fatalf("%q: %v, want %q", raw, derr, want)
		case !maps.Equal(got, want):
			t.Fatalf("%q: got %q, want %q", raw, got, want)
		}
	})
}

// referenceExt decodes an extFields object with encoding/json's tokens,
// member by member: ok is false unless raw is valid JSON and an object or
// null; wantErr reports a member whose value is not a scalar.
func referenceExt(raw []byte) (ext map[string]string, wantErr, ok bool) {
	if !json.Valid(raw) {
		return nil, false, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, false, false
	}
	if tok == nil {
		return map[string]string{}, false, true
	}
	if tok != json.Delim('{') {
		return nil, false, false
	}
	ext = map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false, false
		}
		k := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false, false
		}
		s, isValue, err := jsonScalar(v)
		if err != nil {
			return nil, true, true
		}
		if isValue {
			ext[k] = s
		} else {
			delete(ext, k)
		}
	}
	return ext, false, true
}

// FuzzJSONHeaderScanMatchesUnmarshal: scanJSONHeader reads the usual
// header shapes without encoding/json; whatever it accepts, json.Unmarshal
// must accept too and read into the same fields.
func FuzzJSONHeaderScanMatchesUnmarshal(f *testing.F) {
	for _, s := range []string{
		`{"code":310,"language":"GO","version":317,"opaque":1,"flag":0,"remark":"","extFields":{"a":"pg","b":"orders","d":"4","i":"UNIQ_KEY\u0001x\u0002"}}`,
		`{"code":0,"extFields":{"msgId":"7F00","queueId":"3"},"flag":1,"language":"JAVA","opaque":-7,"serializeTypeCurrentRPC":"JSON","version":402}`,
		`{ "code" : 11 , "opaque" : 2 , "extFields" : { "n" : null , "t" : true , "f" : false , "i" : -12 } }`,
		`{}`, `{"code":1.5}`, `{"code":1e3}`, `{"code":01}`, `{"Code":1}`, `{"code":1,"code":2}`, `{"remark":"a\"b"}`,
		`{"remark":null}`, `{"language":7}`, `{"extFields":[]}`, `{"extFields":{"a":{}}}`, `{"code":1}x`, `{"code":99999999999999999999}`,
		"{\"remark\":\"\xff\"}", `{"extFields":{"a":"\ud800"}}`, `{"extFields":{"a":1.0}}`, `{"code":-0}`, `{"x":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var got jsonHeaderIn
		if !scanJSONHeader(raw, &got) {
			return
		}
		var want jsonHeaderIn
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("%q: scanned, but json.Unmarshal: %v", raw, err)
		}
		same := func(a, b *int64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
		if !same(got.Code, want.Code) || !same(got.Opaque, want.Opaque) || !same(got.Flag, want.Flag) || got.Version != want.Version ||
			(got.Remark == nil) != (want.Remark == nil) || (got.Remark != nil && *got.Remark != *want.Remark) ||
			!bytes.Equal(got.Language, want.Language) || !bytes.Equal(got.ExtFields, want.ExtFields) {
			t.Fatalf("%q: scanned %+v, json.Unmarshal %+v", raw, got, want)
		}
	})
}

// jsonHeaderOut is the JSON header as RocketMQ's Java side writes it
// (fastjson, fields in alphabetical order, null fields left out). The Go
// client writes code, language, version, opaque, flag, remark, extFields in
// that order; readers on both sides match by name, so order is cosmetic.
type jsonHeaderOut struct {
	Code      int16             `json:"code"`
	ExtFields map[string]string `json:"extFields,omitempty"`
	Flag      int32             `json:"flag"`
	Language  json.RawMessage   `json:"language"`
	Opaque    int32             `json:"opaque"`
	Remark    string            `json:"remark,omitempty"`
	// Serialize mirrors Java's serializeTypeCurrentRPC getter; readers ignore it.
	Serialize string `json:"serializeTypeCurrentRPC"`
	Version   int16  `json:"version"`
}

// encodeJSONHeaderReflect is encodeJSONHeader through encoding/json, the
// reference FuzzEncodeJSONHeaderMatchesEncodingJSON compares it with.
func encodeJSONHeaderReflect(c *Command) ([]byte, error) {
	lang := []byte(strconv.Quote(c.Language.String()))
	if c.Language.String() == "" {
		lang = strconv.AppendUint(nil, uint64(c.Language), 10)
	}
	h := jsonHeaderOut{Code: c.Code, ExtFields: c.ExtFields, Flag: c.Flag, Language: lang, Opaque: c.Opaque,
		Remark: c.Remark, Serialize: SerializeJSON.String(), Version: c.Version}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&h); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// wantSameJSONHeader fails the test unless encodeJSONHeader writes what
// encoding/json writes for c.
func wantSameJSONHeader(t *testing.T, c *Command) {
	t.Helper()
	got, err := encodeJSONHeader(c)
	if err != nil {
		t.Fatal(err)
	}
	want, err := encodeJSONHeaderReflect(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encodeJSONHeader:\n%s\nencoding/json:\n%s", got, want)
	}
}

// FuzzEncodeJSONHeaderMatchesEncodingJSON: encodeJSONHeader writes by
// hand what encoding/json writes for the same header.
func FuzzEncodeJSONHeaderMatchesEncodingJSON(f *testing.F) {
	f.Add(int16(310), int32(1), int32(7), uint8(LanguageGo), int16(317), "", "a", "pg", "i", "UNIQ_KEY\x01x\x02")
	f.Add(int16(0), int32(1), int32(-7), uint8(LanguageJava), int16(402), "remark \"q\" \\ \n\t\b\f\x00\x1f\x7f", "", "", "k\u2028", "\xff\xfe<>&\u2029é😀")
	f.Add(int16(-1), int32(0), int32(0), uint8(200), int16(0), "\xc3", "x", "\xed\xa0\x80", "y", "")
	f.Add(int16(math.MinInt16), int32(math.MinInt32), int32(math.MinInt32), uint8(LanguageNodeJS), int16(math.MinInt16), "\u2028", "", "\x7f", "", "")
	f.Add(int16(math.MaxInt16), int32(math.MaxInt32), int32(math.MaxInt32), uint8(14), int16(math.MaxInt16), "\xf4\x90\x80\x80", "k", "\xe2\x80", "k", "\xc0\xaf\xf0\x8f\xbf\xbf")
	f.Fuzz(func(t *testing.T, code int16, flag, opaque int32, lang uint8, version int16, remark, k1, v1, k2, v2 string) {
		c := &Command{Code: code, Flag: flag, Opaque: opaque, Language: LanguageCode(lang), Version: version, Remark: remark}
		if k1 != "" || k2 != "" {
			c.ExtFields = map[string]string{k1: v1, k2: v2}
		}
		wantSameJSONHeader(t, c)
	})
}

// FuzzJSONStringMatchesUnmarshal: jsonString decodes a string token, its
// escapes included, as json.Unmarshal does.
func FuzzJSONStringMatchesUnmarshal(f *testing.F) {
	for _, s := range []string{`""`, `"abc"`, `"UNIQ_KEY\u0001AC11\u0002WAIT\u0001true\u0002"`, `"\"\\\/\b\f\n\r\t"`,
		`"\u00e9\u4e2d\uD83D\uDE00\ud800\udc00x\uDFFF"`, "\"\xff\xfe\"", `"\u12"`, `"\x"`, `"a`, `"a"b"`, "\"\x01\"",
		`"é日本"`, `"\u2028"`, `"\uD800\u0041"`, "\"\xed\xa0\x80\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, tok []byte) {
		var want string
		if json.Unmarshal(tok, &want) != nil || len(tok) < 2 || tok[0] != '"' || tok[len(tok)-1] != '"' {
			return // not a string token alone (white space around it, or not JSON)
		}
		if got, err := jsonString(tok); err != nil || got != want {
			t.Fatalf("jsonString(%q) = %q, %v; json.Unmarshal gives %q", tok, got, err, want)
		}
	})
}
