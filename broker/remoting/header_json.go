package remoting

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/halfbackmq/halfback/internal/jsonenc"
)

// jsonHeaderIn accepts what the official clients send. Numbers are read as
// int64 and range-checked so an out-of-range value is an error, not a wrap.
// ExtFields is read member by member (decodeJSONExt), so that a header of
// too many stops at MaxExtFields.
type jsonHeaderIn struct {
	Code      *int64          `json:"code"`
	Language  json.RawMessage `json:"language"`
	Version   int64           `json:"version"`
	Opaque    *int64          `json:"opaque"`
	Flag      *int64          `json:"flag"`
	Remark    *string         `json:"remark"`
	ExtFields json.RawMessage `json:"extFields"`
}

// encodeJSONHeader writes c's header as RocketMQ's Java side does
// (fastjson: fields in alphabetical order, null fields left out, the
// extFields keys sorted too). The Go client writes code, language,
// version, opaque, flag, remark, extFields in that order; readers on both
// sides match by name, so order is cosmetic. It writes what encoding/json
// would (without HTML escaping; FuzzEncodeJSONHeaderMatchesEncodingJSON),
// without its reflection: this is every JSON answer's path.
func encodeJSONHeader(c *Command) ([]byte, error) {
	b := make([]byte, 0, 128+32*len(c.ExtFields))
	b = append(b, `{"code":`...)
	b = strconv.AppendInt(b, int64(c.Code), 10)
	if len(c.ExtFields) > 0 {
		keys := make([]string, 0, len(c.ExtFields))
		for k := range c.ExtFields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, `,"extFields":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonenc.AppendString(b, k)
			b = append(b, ':')
			b = jsonenc.AppendString(b, c.ExtFields[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"flag":`...)
	b = strconv.AppendInt(b, int64(c.Flag), 10)
	b = append(b, `,"language":`...)
	if name := c.Language.String(); name != "" {
		b = jsonenc.AppendString(b, name)
	} else {
		b = strconv.AppendUint(b, uint64(c.Language), 10)
	}
	b = append(b, `,"opaque":`...)
	b = strconv.AppendInt(b, int64(c.Opaque), 10)
	if c.Remark != "" {
		b = append(b, `,"remark":`...)
		b = jsonenc.AppendString(b, c.Remark)
	}
	b = append(b, `,"serializeTypeCurrentRPC":"JSON","version":`...)
	b = strconv.AppendInt(b, int64(c.Version), 10)
	return append(b, '}'), nil
}

// decodeJSONHeader parses a JSON header into cmd. On failure the returned
// DecodeError says whether opaque and flag could still be read.
func decodeJSONHeader(data []byte, cmd *Command) *DecodeError {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return malformed("JSON header is not an object")
	}
	var h jsonHeaderIn
	var derr *DecodeError
	if !scanJSONHeader(trimmed, &h) {
		h = jsonHeaderIn{}
		err := json.Unmarshal(data, &h)
		var typeErr *json.UnmarshalTypeError
		if err != nil && !errors.As(err, &typeErr) {
			return malformed("JSON header: %v", err)
		}
		// After a type error encoding/json still fills the other fields, so
		// opaque and flag may be known even though the header is rejected.
		if err != nil {
			derr = malformed("JSON header: %v", err)
		}
	}
	if derr == nil {
		derr = fillJSONHeader(&h, cmd)
	}
	if derr != nil && h.Opaque != nil && fitsInt32(*h.Opaque) && (h.Flag == nil || fitsInt32(*h.Flag)) {
		derr.HeaderKnown = true
		derr.Opaque = int32(*h.Opaque)
		if h.Flag != nil {
			derr.Flag = int32(*h.Flag)
		}
	}
	return derr
}

// scanJSONHeader reads the header as the official clients write it
// into h, as json.Unmarshal would, without its reflection (this is every
// JSON request's path): an object of the fields jsonHeaderIn names,
// spelled as they are, integers in plain notation, language and remark
// strings without escapes and of valid UTF-8, and an extFields object of
// scalars (checked here, read by decodeJSONExt). It reports false, and
// leaves h to json.Unmarshal, for anything else, valid or not.
func scanJSONHeader(b []byte, h *jsonHeaderIn) bool {
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	i := skipJSONSpace(b, 1)
	if i < len(b) && b[i] == '}' {
		return skipJSONSpace(b, i+1) == len(b)
	}
	for {
		k, n, ok := scanPlainString(b, i)
		if !ok {
			return false
		}
		if i = skipJSONSpace(b, n); i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipJSONSpace(b, i+1)
		switch string(k) {
		case "code", "opaque", "flag", "version":
			v, n, ok := scanPlainInt(b, i)
			if !ok {
				return false
			}
			switch string(k) {
			case "code":
				h.Code = &v
			case "opaque":
				h.Opaque = &v
			case "flag":
				h.Flag = &v
			default:
				h.Version = v
			}
			i = n
		case "language", "remark", "serializeTypeCurrentRPC":
			v, n, ok := scanPlainString(b, i)
			if !ok || !utf8.Valid(v) {
				return false
			}
			switch string(k) {
			case "language":
				h.Language = json.RawMessage(b[i:n])
			case "remark":
				r := string(v)
				h.Remark = &r
			}
			i = n
		case "extFields":
			n, ok := scanScalarObject(b, i)
			if !ok {
				return false
			}
			h.ExtFields = json.RawMessage(b[i:n])
			i = n
		default:
			return false
		}
		if i = skipJSONSpace(b, i); i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipJSONSpace(b, i+1)
		case '}':
			return skipJSONSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
}

// scanPlainString reads a JSON string at b[i] that has no escapes: its
// contents and the index past it. Control characters make it invalid.
func scanPlainString(b []byte, i int) (s []byte, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// scanPlainInt reads an integer in plain JSON notation (no fraction or
// exponent, no leading zeros) at b[i] that fits an int64.
func scanPlainInt(b []byte, i int) (v int64, end int, ok bool) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	start := j
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	if j == start || (b[start] == '0' && j-start > 1) || (j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E')) {
		return 0, 0, false
	}
	v, err := strconv.ParseInt(string(b[i:j]), 10, 64)
	return v, j, err == nil
}

// scanScalarObject checks that b[i:] starts with an object whose members
// are strings, plain integers, true, false or null, and returns the index
// past it. Strings may hold escapes here (decodeJSONExt decodes them),
// but only valid ones.
func scanScalarObject(b []byte, i int) (end int, ok bool) {
	if i >= len(b) || b[i] != '{' {
		return 0, false
	}
	i = skipJSONSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		n, ok := scanString(b, i)
		if !ok {
			return 0, false
		}
		if i = skipJSONSpace(b, n); i >= len(b) || b[i] != ':' {
			return 0, false
		}
		if i = skipJSONSpace(b, i+1); i >= len(b) {
			return 0, false
		}
		switch c := b[i]; {
		case c == '"':
			n, ok = scanString(b, i)
		case c == '-' || (c >= '0' && c <= '9'):
			_, n, ok = scanPlainInt(b, i)
		default:
			n, ok = 0, false
			for _, lit := range []string{"true", "false", "null"} {
				if bytes.HasPrefix(b[i:], []byte(lit)) {
					n, ok = i+len(lit), true
				}
			}
		}
		if !ok {
			return 0, false
		}
		if i = skipJSONSpace(b, n); i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case ',':
			i = skipJSONSpace(b, i+1)
		case '}':
			return i + 1, true
		default:
			return 0, false
		}
	}
}

// scanString checks a JSON string at b[i], escapes included, and returns
// the index past it.
func scanString(b []byte, i int) (end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, true
		case c < 0x20:
			return 0, false
		case c == '\\':
			if j+1 >= len(b) {
				return 0, false
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
			case 'u':
				if _, ok := hex4(b, j+2); !ok {
					return 0, false
				}
				j += 5
			default:
				return 0, false
			}
		}
	}
	return 0, false
}

func fillJSONHeader(h *jsonHeaderIn, cmd *Command) *DecodeError {
	if h.Opaque != nil {
		if !fitsInt32(*h.Opaque) {
			return malformed("opaque %d out of int32 range", *h.Opaque)
		}
		cmd.Opaque = int32(*h.Opaque)
	}
	if h.Flag != nil {
		if !fitsInt32(*h.Flag) {
			return malformed("flag %d out of int32 range", *h.Flag)
		}
		cmd.Flag = int32(*h.Flag)
	}
	if h.Code == nil {
		return malformed("JSON header has no code")
	}
	if *h.Code < math.MinInt16 || *h.Code > math.MaxInt16 {
		return &DecodeError{Err: ErrCodeOutOfRange, Reason: "code " + strconv.FormatInt(*h.Code, 10), Code: *h.Code}
	}
	cmd.Code = int16(*h.Code)
	if h.Version < math.MinInt16 || h.Version > math.MaxInt16 {
		return malformed("version %d out of int16 range", h.Version)
	}
	cmd.Version = int16(h.Version)
	lang, err := parseJSONLanguage(h.Language)
	if err != nil {
		return err
	}
	cmd.Language = lang
	if h.Remark != nil {
		cmd.Remark = *h.Remark
	}
	ext, derr := decodeJSONExt(h.ExtFields)
	if derr != nil {
		return derr
	}
	cmd.ExtFields = ext
	return nil
}

// decodeJSONExt reads the extFields object: nil when it is absent, null or
// empty. A member whose value is null is left out (jsonScalar); of members
// of one name, the last counts. raw is valid JSON (json.Unmarshal checked
// the whole header first), so it is scanned, not parsed again: member by
// member, so that a header of too many stops at MaxExtFields, and without
// encoding/json's per-member reflection (this is every request's path).
func decodeJSONExt(raw json.RawMessage) (map[string]string, *DecodeError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, malformed("extFields %.32s is not an object", raw)
	}
	var ext map[string]string
	for i := 1; ; {
		if i = skipJSONSpace(raw, i); i < len(raw) && raw[i] == '}' {
			return ext, nil
		}
		if i < len(raw) && raw[i] == ',' {
			i = skipJSONSpace(raw, i+1)
		}
		if i >= len(raw) || raw[i] != '"' { // not valid JSON after all
			return nil, malformed("extFields %.32s is not an object", raw)
		}
		n := jsonValueEnd(raw, i) // the member's name, a string
		k, err := jsonString(raw[i:n])
		if err != nil {
			return nil, malformed("extFields: %v", err)
		}
		if i = skipJSONSpace(raw, n); i >= len(raw) || raw[i] != ':' {
			return nil, malformed("extFields %.32s is not an object", raw)
		}
		if i = skipJSONSpace(raw, i+1); i >= len(raw) {
			return nil, malformed("extFields %.32s is not an object", raw)
		}
		n = jsonValueEnd(raw, i)
		v, ok, err := jsonScalar(raw[i:n])
		if err != nil {
			return nil, malformed("extFields[%q]: %v", k, err)
		}
		i = n
		if !ok { // null: absent, also after an earlier member of that name
			delete(ext, k)
			continue
		}
		if _, dup := ext[k]; !dup && len(ext) == MaxExtFields {
			return nil, malformed("more than %d ext fields", MaxExtFields)
		}
		if ext == nil {
			ext = make(map[string]string, 16)
		}
		ext[k] = v
	}
}

// skipJSONSpace returns the index of the first byte of b at or after i
// that is not JSON white space.
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// jsonValueEnd returns the index just past the value of valid JSON b that
// starts at i: a string, a literal or number, or an object or array
// (nested ones included).
func jsonValueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return len(b)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = jsonValueEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\r' && b[j] != '\n' {
		j++
	}
	return j
}

// jsonString decodes a JSON string token as encoding/json does; one with
// no escapes and valid UTF-8 is its bytes, one with the usual escapes is
// decoded by unescapeJSONString.
func jsonString(tok []byte) (string, error) {
	if len(tok) >= 2 && tok[0] == '"' && tok[len(tok)-1] == '"' {
		if in := tok[1 : len(tok)-1]; bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
			return string(in), nil
		}
	}
	return unescapeJSONString(tok)
}

// unescapeJSONString decodes a JSON string token with escapes. The usual
// ones (a send's properties carry \u0001 and \u0002 between names and
// values) are decoded here; a surrogate escape or invalid UTF-8, which
// encoding/json replaces by rules of its own, goes to json.Unmarshal, as
// does anything invalid, for its error.
func unescapeJSONString(tok []byte) (string, error) {
	if len(tok) < 2 || tok[0] != '"' || tok[len(tok)-1] != '"' {
		return unmarshalJSONString(tok)
	}
	in := tok[1 : len(tok)-1]
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); {
		c := in[i]
		switch {
		case c == '\\':
			if i+1 >= len(in) {
				return unmarshalJSONString(tok)
			}
			switch e := in[i+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := hex4(in, i+2)
				if !ok || utf16.IsSurrogate(r) {
					return unmarshalJSONString(tok)
				}
				out = utf8.AppendRune(out, r)
				i += 6
				continue
			default:
				return unmarshalJSONString(tok)
			}
			i += 2
		case c == '"' || c < 0x20:
			return unmarshalJSONString(tok)
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			n := min(len(in)-i, utf8.UTFMax)
			r, size := utf8.DecodeRune(in[i : i+n])
			if r == utf8.RuneError && size == 1 {
				return unmarshalJSONString(tok)
			}
			out = append(out, in[i:i+size]...)
			i += size
		}
	}
	return string(out), nil
}

// hex4 reads the four hex digits of a \u escape at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// unmarshalJSONString is encoding/json's reading of a string token.
func unmarshalJSONString(tok []byte) (string, error) {
	var s string
	err := json.Unmarshal(tok, &s)
	return s, err
}

// parseJSONLanguage accepts an enum name (what both clients send), an enum
// code as a number (what fastjson also accepts), or null/absent (JAVA, the
// Java field's default). An unknown name becomes LanguageOther.
func parseJSONLanguage(raw json.RawMessage) (LanguageCode, *DecodeError) {
	if len(raw) == 0 || string(raw) == "null" {
		return LanguageJava, nil
	}
	if raw[0] == '"' {
		name, err := jsonString(raw)
		if err != nil {
			return 0, malformed("language %s: %v", raw, err)
		}
		if l, ok := ParseLanguage(name); ok {
			return l, nil
		}
		return LanguageOther, nil
	}
	var n int64
	if json.Unmarshal(raw, &n) == nil && n >= 0 && n <= math.MaxUint8 {
		return LanguageCode(n), nil
	}
	return 0, malformed("language %s is neither a name nor a code", raw)
}

// jsonScalar turns an ext-field value into its string: a JSON string's
// contents, or a number's or boolean's literal text. null reports ok=false
// (the field is absent, as in Java's HashMap). Objects and arrays are errors.
func jsonScalar(raw json.RawMessage) (string, bool, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false, errors.New("empty value")
	}
	switch raw[0] {
	case '"':
		s, err := jsonString(raw)
		if err != nil {
			return "", false, err
		}
		return s, true, nil
	case 'n':
		return "", false, nil
	case 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), true, nil
	}
	return "", false, errors.New("value is not a string, number or boolean")
}

func fitsInt32(v int64) bool { return v >= math.MinInt32 && v <= math.MaxInt32 }
