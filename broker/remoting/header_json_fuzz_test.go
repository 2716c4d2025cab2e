package remoting

import (
	"bytes"
	"encoding/json"
	"maps"
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
