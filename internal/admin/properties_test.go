package admin

import (
	"maps"
	"testing"
)

// A RocketMQ broker's GET_BROKER_CONFIG body (java.util.Properties text)
// reads back name by name: comments and blank lines skipped, CRLF line
// ends, spaces around '=', and escaped backslashes, line breaks and a
// leading space in values.
func TestParseProperties(t *testing.T) {
	text := "#Wed Nov 25 03:00:00 UTC 2026\r\n" +
		"brokerName=broker-a\r\n" +
		"  flushDiskType = ASYNC_FLUSH\n" +
		"\n" +
		"! another comment\n" +
		`storePathRootDir=C\:\\store\\root` + "\n" +
		`odd=\ leading space\nand a break` + "\n" +
		"empty=\n" +
		"noValue\n"
	want := map[string]string{
		"brokerName": "broker-a", "flushDiskType": "ASYNC_FLUSH", `storePathRootDir`: `C:\store\root`,
		"odd": " leading space\nand a break", "empty": "", "noValue": "",
	}
	if got := parseProperties(text); !maps.Equal(got, want) {
		t.Fatalf("parseProperties = %q\nwant %q", got, want)
	}
}

// Java's escapes beyond ASCII (\uXXXX, a surrogate pair for a character
// beyond the BMP) and \f read back as the characters; a malformed \u
// keeps its letters.
func TestParsePropertiesUnicodeEscapes(t *testing.T) {
	text := `dir=/j\u00FCrgen/\u6570\u636e/\uD83D\uDC1F` + "\n" +
		`ff=a\fb` + "\n" +
		`bad=\u12 and \uZZZZ` + "\n"
	want := map[string]string{"dir": "/jürgen/数据/🐟", "ff": "a\fb", "bad": "u12 and uZZZZ"}
	if got := parseProperties(text); !maps.Equal(got, want) {
		t.Fatalf("parseProperties = %q\nwant %q", got, want)
	}
}
