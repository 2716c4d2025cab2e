package fastjson

import (
	"encoding/json"
	"testing"
)

func TestQuoteNumericKeys(t *testing.T) {
	cases := map[string]string{
		// Java's fastjson: integer map keys unquoted.
		`{"brokerAddrs":{0:"a:1",1:"b:2"}}`: `{"brokerAddrs":{"0":"a:1","1":"b:2"}}`,
		`{ "m" : { -1 : "x" } }`:            `{ "m" : { "-1" : "x" } }`,
		// Numbers as values, in arrays, and inside strings stay as they are.
		`{"codeSet":[1,2,3],"n":4}`:           `{"codeSet":[1,2,3],"n":4}`,
		`{"s":"{0:\"x\",1:2}","t":[{"a":1}]}`: `{"s":"{0:\"x\",1:2}","t":[{"a":1}]}`,
		`{"0":"already quoted"}`:              `{"0":"already quoted"}`,
	}
	for in, want := range cases {
		got := string(QuoteNumericKeys([]byte(in)))
		if got != want {
			t.Errorf("QuoteNumericKeys(%s) = %s, want %s", in, got, want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("QuoteNumericKeys(%s) is not valid JSON", in)
		}
	}
}
