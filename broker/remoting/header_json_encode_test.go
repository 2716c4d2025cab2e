package remoting

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"testing"
)

// jsonStringReference is s as encoding/json writes it without HTML
// escaping.
func jsonStringReference(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// TestAppendJSONStringMatchesEncodingJSON checks appendJSONString against
// encoding/json for every string of one and two bytes and, after every
// byte of 0x80 and above, three bytes drawn from the edges of the UTF-8
// ranges: every control character, DEL, every kind of invalid UTF-8
// (stray continuation, overlong, surrogate, above U+10FFFF, truncated),
// U+2028 and U+2029 and their neighbours.
func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	check := func(s string) {
		if got, want := appendJSONString(nil, s), jsonStringReference(t, s); !bytes.Equal(got, want) {
			t.Fatalf("appendJSONString(%q) = %s, encoding/json %s", s, got, want)
		}
	}
	check("")
	for a := range 256 {
		check(string([]byte{byte(a)}))
		for b := range 256 {
			check(string([]byte{byte(a), byte(b)}))
		}
	}
	edges := []byte{0x00, '"', 'A', 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xa8, 0xbf, 0xc0, 0xff}
	for a := 0x80; a < 256; a++ {
		for _, b := range edges {
			for _, c := range edges {
				for _, d := range edges {
					check(string([]byte{'x', byte(a), b, c, d}))
				}
			}
		}
	}
	for _, s := range []string{"\u2027\u2028\u2029\u202a", "a\u2028b\u2029c", "\U0010ffff\U00010000\uffff\ufffd", "<>&"} {
		check(s)
	}
}

// TestEncodeJSONHeaderEdgeCases compares encodeJSONHeader with encoding/json
// for the numbers' extremes, every language code, empty and nil ext
// fields and an empty key.
func TestEncodeJSONHeaderEdgeCases(t *testing.T) {
	var cmds []*Command
	for l := range 256 {
		cmds = append(cmds, &Command{Language: LanguageCode(l)})
	}
	for _, ext := range []map[string]string{nil, {}, {"": ""}, {"": "x", "a": ""}, {"b": "1", "a": "2", "\xff": "3", "\xfe": "4", "é": "5"}} {
		cmds = append(cmds, &Command{ExtFields: ext, Remark: "r"})
	}
	cmds = append(cmds,
		&Command{Code: math.MinInt16, Flag: math.MinInt32, Opaque: math.MinInt32, Version: math.MinInt16},
		&Command{Code: math.MaxInt16, Flag: math.MaxInt32, Opaque: math.MaxInt32, Version: math.MaxInt16},
		&Command{Code: -1, Flag: -1, Opaque: -1, Version: -1, Remark: "\x00"},
	)
	for _, c := range cmds {
		wantSameJSONHeader(t, c)
	}
}

// TestJSONStringEscapesMatchUnmarshal checks jsonString against
// json.Unmarshal for every \u escape, alone, in upper and lower case hex,
// after and before text, and every surrogate escape followed by a low
// surrogate, a high one and a plain character; and for raw bytes of every
// value after every short escape.
func TestJSONStringEscapesMatchUnmarshal(t *testing.T) {
	check := func(tok string) {
		var want string
		if err := json.Unmarshal([]byte(tok), &want); err != nil {
			return // not a valid token
		}
		if got, err := jsonString([]byte(tok)); err != nil || got != want {
			t.Fatalf("jsonString(%q) = %q, %v; json.Unmarshal gives %q", tok, got, err, want)
		}
	}
	for r := range 0x10000 {
		check(fmt.Sprintf(`"\u%04x"`, r))
		check(fmt.Sprintf(`"a\u%04Xb"`, r))
		if r >= 0xd800 && r <= 0xdfff {
			for _, next := range []string{`\udc00`, `\udfff`, `\ud800`, `\u0041`, `A`, `\n`, "\xff", "é"} {
				check(fmt.Sprintf(`"\u%04x%s"`, r, next))
			}
		}
	}
	for _, e := range []string{`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`} {
		for b := 0x20; b < 256; b++ {
			check(`"` + e + string([]byte{byte(b)}) + `"`)
			check(`"` + string([]byte{byte(b)}) + e + `"`)
		}
	}
}
