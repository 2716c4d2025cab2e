package remoting

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
)

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
