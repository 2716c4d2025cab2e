package remoting

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
)

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

// jsonHeaderIn accepts what the official clients send. Numbers are read as
// int64 and range-checked so an out-of-range value is an error, not a wrap.
type jsonHeaderIn struct {
	Code      *int64                     `json:"code"`
	Language  json.RawMessage            `json:"language"`
	Version   int64                      `json:"version"`
	Opaque    *int64                     `json:"opaque"`
	Flag      *int64                     `json:"flag"`
	Remark    *string                    `json:"remark"`
	ExtFields map[string]json.RawMessage `json:"extFields"`
}

func encodeJSONHeader(c *Command) ([]byte, error) {
	lang := []byte(strconv.Quote(c.Language.String()))
	if c.Language.String() == "" {
		lang = strconv.AppendUint(nil, uint64(c.Language), 10)
	}
	h := jsonHeaderOut{
		Code:      c.Code,
		ExtFields: c.ExtFields,
		Flag:      c.Flag,
		Language:  lang,
		Opaque:    c.Opaque,
		Remark:    c.Remark,
		Serialize: SerializeJSON.String(),
		Version:   c.Version,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&h); err != nil {
		return nil, errors.Join(ErrInvalidCommand, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// decodeJSONHeader parses a JSON header into cmd. On failure the returned
// DecodeError says whether opaque and flag could still be read.
func decodeJSONHeader(data []byte, cmd *Command) *DecodeError {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return malformed("JSON header is not an object")
	}
	var h jsonHeaderIn
	err := json.Unmarshal(data, &h)
	var typeErr *json.UnmarshalTypeError
	if err != nil && !errors.As(err, &typeErr) {
		return malformed("JSON header: %v", err)
	}
	// After a type error encoding/json still fills the other fields, so
	// opaque and flag may be known even though the header is rejected.
	var derr *DecodeError
	if err != nil {
		derr = malformed("JSON header: %v", err)
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
	if len(h.ExtFields) > 0 {
		cmd.ExtFields = make(map[string]string, len(h.ExtFields))
		for k, raw := range h.ExtFields {
			v, ok, err := jsonScalar(raw)
			if err != nil {
				return malformed("extFields[%q]: %v", k, err)
			}
			if ok {
				cmd.ExtFields[k] = v
			}
		}
	}
	return nil
}

// parseJSONLanguage accepts an enum name (what both clients send), an enum
// code as a number (what fastjson also accepts), or null/absent (JAVA, the
// Java field's default). An unknown name becomes LanguageOther.
func parseJSONLanguage(raw json.RawMessage) (LanguageCode, *DecodeError) {
	if len(raw) == 0 || string(raw) == "null" {
		return LanguageJava, nil
	}
	var name string
	if json.Unmarshal(raw, &name) == nil {
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
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
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
