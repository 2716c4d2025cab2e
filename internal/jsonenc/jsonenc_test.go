package jsonenc

import (
	"bytes"
	"encoding/json"
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

// TestAppendJSONStringMatchesEncodingJSON checks AppendString against
// encoding/json for every string of one and two bytes and, after every
// byte of 0x80 and above, three bytes drawn from the edges of the UTF-8
// ranges: every control character, DEL, every kind of invalid UTF-8
// (stray continuation, overlong, surrogate, above U+10FFFF, truncated),
// U+2028 and U+2029 and their neighbours.
func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	check := func(s string) {
		if got, want := AppendString(nil, s), jsonStringReference(t, s); !bytes.Equal(got, want) {
			t.Fatalf("AppendString(%q) = %s, encoding/json %s", s, got, want)
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
