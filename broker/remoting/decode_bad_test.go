package remoting

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// binaryFrame wraps a hand-made binary header and body into a frame.
func binaryFrame(header, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(4+len(header)+len(body)))
	b = binary.BigEndian.AppendUint32(b, 1<<24|uint32(len(header)))
	return append(append(b, header...), body...)
}

// binHeader is code 10, GO, version 1, opaque 77, flag 0, then rest.
func binHeader(rest ...byte) []byte {
	h := []byte{0, 10, 9, 0, 1, 0, 0, 0, 77, 0, 0, 0, 0}
	return append(h, rest...)
}

func TestDecodeRejects(t *testing.T) {
	cases := []struct {
		name        string
		in          []byte
		want        error
		headerKnown bool
	}{
		{"claims 2 GiB", []byte{0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0}, ErrFrameTooLarge, false},
		{"one byte over 16 MiB", []byte{0x00, 0xff, 0xff, 0xfd}, ErrFrameTooLarge, false},
		{"negative length", []byte{0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0}, ErrMalformedFrame, false},
		{"length 3", []byte{0, 0, 0, 3, 0, 0, 0}, ErrMalformedFrame, false},
		{"header beyond frame", []byte{0, 0, 0, 8, 0, 0, 0, 5, '{', '}', 0, 0}, ErrMalformedFrame, false},
		{"unknown serialize type", []byte{0, 0, 0, 6, 2, 0, 0, 2, '{', '}'}, ErrMalformedFrame, false},
		{"empty JSON header", jsonFrame("", "x"), ErrMalformedFrame, false},
		{"JSON syntax", jsonFrame(`{"code":10,"opaque":5`, ""), ErrMalformedFrame, false},
		{"JSON null", jsonFrame(`null`, ""), ErrMalformedFrame, false},
		{"JSON array", jsonFrame(`[1,2]`, ""), ErrMalformedFrame, false},
		{"JSON trailing garbage", jsonFrame(`{"code":10,"opaque":5} x`, ""), ErrMalformedFrame, false},
		{"JSON without code", jsonFrame(`{"opaque":5,"flag":0}`, ""), ErrMalformedFrame, true},
		{"JSON code as string", jsonFrame(`{"code":"10","opaque":5,"flag":0}`, ""), ErrMalformedFrame, true},
		{"JSON ext value object", jsonFrame(`{"code":10,"opaque":5,"flag":0,"extFields":{"a":{}}}`, ""), ErrMalformedFrame, true},
		{"JSON opaque too big", jsonFrame(`{"code":10,"opaque":4294967296}`, ""), ErrMalformedFrame, false},
		{"JSON version too big", jsonFrame(`{"code":10,"opaque":5,"version":40000}`, ""), ErrMalformedFrame, true},
		{"JSON bad language", jsonFrame(`{"code":10,"opaque":5,"language":{}}`, ""), ErrMalformedFrame, true},
		{"JSON code beyond int16", jsonFrame(`{"code":200050,"opaque":5,"flag":0}`, ""), ErrCodeOutOfRange, true},
		{"binary too short", binaryFrame([]byte{0, 10, 9}, nil), ErrMalformedFrame, false},
		{"binary stops after flag", binaryFrame(binHeader(), nil), ErrMalformedFrame, true},
		{"binary negative remark", binaryFrame(binHeader(0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0), nil), ErrMalformedFrame, true},
		{"binary remark past header", binaryFrame(binHeader(0, 0, 0, 9, 'a', 0, 0, 0, 0), []byte("bodybody")), ErrMalformedFrame, true},
		{"binary no ext length", binaryFrame(binHeader(0, 0, 0, 1, 'r'), nil), ErrMalformedFrame, true},
		{"binary ext past header", binaryFrame(binHeader(0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 'k'), []byte("bodybody")), ErrMalformedFrame, true},
		{"binary ext trailing bytes", binaryFrame(binHeader(0, 0, 0, 0, 0, 0, 0, 0, 'x'), nil), ErrMalformedFrame, true},
		{"binary negative key length", binaryFrame(binHeader(0, 0, 0, 0, 0, 0, 0, 2, 0xff, 0xff), nil), ErrMalformedFrame, true},
		{"binary value length past ext", binaryFrame(binHeader(0, 0, 0, 0, 0, 0, 0, 7, 0, 1, 'k', 0, 0, 0, 5), nil), ErrMalformedFrame, true},
		{"binary truncated value length", binaryFrame(binHeader(0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 'k', 0), nil), ErrMalformedFrame, true},
	}
	for _, tc := range cases {
		_, err := Decode(bytes.NewReader(tc.in), 1<<24)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
			continue
		}
		var derr *DecodeError
		if !errors.As(err, &derr) {
			t.Errorf("%s: %T is not a *DecodeError", tc.name, err)
			continue
		}
		if derr.HeaderKnown != tc.headerKnown {
			t.Errorf("%s: HeaderKnown = %v, want %v (%v)", tc.name, derr.HeaderKnown, tc.headerKnown, err)
		}
		if derr.HeaderKnown && derr.Opaque != 5 && derr.Opaque != 77 {
			t.Errorf("%s: Opaque = %d", tc.name, derr.Opaque)
		}
	}
}

func TestDecodeTruncated(t *testing.T) {
	frame := mustEncode(t, &Command{Code: 1, ExtFields: map[string]string{"k": "v"}, Body: []byte("body")})
	if _, err := Decode(bytes.NewReader(nil), 0); err != io.EOF {
		t.Fatalf("empty input: %v, want io.EOF", err)
	}
	for n := 1; n < len(frame); n++ {
		if _, err := Decode(bytes.NewReader(frame[:n]), 0); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("first %d of %d bytes: %v, want io.ErrUnexpectedEOF", n, len(frame), err)
		}
	}
}

func TestDecodeMaxFrameSizeIncludesPrefix(t *testing.T) {
	frame := mustEncode(t, &Command{Code: 1, Body: make([]byte, 100)})
	if _, err := Decode(bytes.NewReader(frame), len(frame)); err != nil {
		t.Fatalf("frame of exactly the limit: %v", err)
	}
	if _, err := Decode(bytes.NewReader(frame), len(frame)-1); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("frame one over the limit: %v", err)
	}
}

// allocated returns the bytes allocated while f ran.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestDecodeDoesNotAllocateClaimedSize(t *testing.T) {
	// A 2 GiB claim is refused after the 4-byte prefix.
	huge := []byte{0x7f, 0xff, 0xff, 0xff, 1, 0, 0, 0}
	var err error
	n := allocated(func() { _, err = Decode(bytes.NewReader(huge), 0) })
	if !errors.Is(err, ErrFrameTooLarge) || n > 64<<10 {
		t.Fatalf("2 GiB claim: err %v, %d bytes allocated", err, n)
	}
	// A claim within the limit that never delivers costs what arrived, not
	// what was claimed.
	short := binary.BigEndian.AppendUint32(nil, 16<<20-8)
	short = append(short, 0, 0, 0, 2, '{', '}')
	short = append(short, make([]byte, 100<<10)...)
	n = allocated(func() { _, err = Decode(bytes.NewReader(short), 0) })
	if !errors.Is(err, io.ErrUnexpectedEOF) || n > 1<<20 {
		t.Fatalf("truncated 16 MiB claim: err %v, %d bytes allocated", err, n)
	}
}

func TestEncodeRejects(t *testing.T) {
	long := string(make([]byte, 40000))
	cases := map[string]*Command{
		"unknown serialize type": {SerializeType: 7},
		"binary key over int16":  {SerializeType: SerializeRocketMQ, ExtFields: map[string]string{long: "v"}},
		"header over 24 bits":    {SerializeType: SerializeRocketMQ, Remark: string(make([]byte, 1<<24))},
	}
	for name, cmd := range cases {
		if _, err := Encode(cmd); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("%s: %v, want ErrInvalidCommand", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range sampleCommands() {
		c.Body = c.Body[:min(len(c.Body), 16)]
		for _, st := range []SerializeType{SerializeJSON, SerializeRocketMQ} {
			c.SerializeType = st
			f.Add(mustEncode(f, c))
		}
	}
	f.Add(jsonFrame(`{"code":200050,"opaque":5,"flag":0,"extFields":{"a":1,"b":null}}`, "x"))
	f.Add(binaryFrame(binHeader(0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 'k', 0), nil))
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, err := Decode(bytes.NewReader(data), 1<<20)
		if err != nil {
			var derr *DecodeError
			if errors.As(err, &derr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return
			}
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
		// Whatever decodes re-encodes, and decodes to the same command.
		frame, err := Encode(cmd)
		if err != nil {
			t.Fatalf("re-encode %v: %v", cmd, err)
		}
		again, err := Decode(bytes.NewReader(frame), 1<<21)
		if err != nil {
			t.Fatalf("decode of re-encoded %v: %v", cmd, err)
		}
		// Binary is exact; JSON is too unless a string held invalid UTF-8,
		// which encoding/json replaces with U+FFFD.
		if cmd.SerializeType == SerializeRocketMQ || validUTF8(cmd) {
			if !equalCommands(again, cmd) {
				t.Fatalf("round trip changed the command:\n got %v\nwant %v", again, cmd)
			}
		}
	})
}

func validUTF8(c *Command) bool {
	if !utf8.ValidString(c.Remark) {
		return false
	}
	for k, v := range c.ExtFields {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return false
		}
	}
	return true
}

func equalCommands(a, b *Command) bool {
	a, b = normalise(a), normalise(b)
	if a.Code != b.Code || a.Language != b.Language || a.Version != b.Version || a.Opaque != b.Opaque ||
		a.Flag != b.Flag || a.Remark != b.Remark || a.SerializeType != b.SerializeType ||
		!bytes.Equal(a.Body, b.Body) || len(a.ExtFields) != len(b.ExtFields) {
		return false
	}
	for k, v := range a.ExtFields {
		if w, ok := b.ExtFields[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// extJSON returns a JSON header with n ext fields of short distinct keys.
func extJSON(n int) string {
	var b strings.Builder
	b.WriteString(`{"code":10,"opaque":5,"flag":0,"extFields":{`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + strconv.FormatInt(int64(i), 36) + `":1`)
	}
	b.WriteString(`}}`)
	return b.String()
}

// extBinary returns a binary frame with n ext fields of 3-byte keys and
// empty values.
func extBinary(n int) []byte {
	var ext []byte
	for i := range n {
		ext = binary.BigEndian.AppendUint16(ext, 3)
		ext = append(ext, byte(i>>16), byte(i>>8), byte(i))
		ext = binary.BigEndian.AppendUint32(ext, 0)
	}
	h := binHeader(0, 0, 0, 0)
	h = binary.BigEndian.AppendUint32(h, uint32(len(ext)))
	return binaryFrame(append(h, ext...), nil)
}

// A header of many tiny ext fields costs far more as a map than as bytes:
// a 16 MiB one of 1.8 million fields took 557 MiB (JSON) or 309 MiB
// (binary) to decode, on the read loop, where MaxInFlightBytes charges the
// frame's 16 MiB. RocketMQ's headers carry a few dozen fields: past
// MaxExtFields the frame is refused, in either encoding, before the map
// grows (decoding costs a few times the frame, not tens of times), with
// the opaque known so that the request is answered.
func TestDecodeRefusesTooManyExtFields(t *testing.T) {
	for _, st := range []SerializeType{SerializeJSON, SerializeRocketMQ} {
		frame := func(n int) []byte {
			if st == SerializeJSON {
				return jsonFrame(extJSON(n), "")
			}
			return extBinary(n)
		}
		cmd, err := Decode(bytes.NewReader(frame(MaxExtFields)), 0)
		if err != nil || len(cmd.ExtFields) != MaxExtFields {
			t.Fatalf("%v: MaxExtFields fields: %v", st, err)
		}
		_, err = Decode(bytes.NewReader(frame(MaxExtFields+1)), 0)
		var derr *DecodeError
		if !errors.As(err, &derr) || !errors.Is(err, ErrMalformedFrame) || !derr.HeaderKnown || derr.Opaque == 0 {
			t.Fatalf("%v: MaxExtFields+1 fields: %v", st, err)
		}
		n := 1
		for len(frame(n)) < 8<<20 {
			n *= 2
		}
		dense := frame(n)
		a := allocated(func() { _, err = Decode(bytes.NewReader(dense), 0) })
		if !errors.Is(err, ErrMalformedFrame) || a > 6*uint64(len(dense)) {
			t.Fatalf("%v: %d ext fields in %d KiB: err %v, %d KiB allocated", st, n, len(dense)>>10, err, a>>10)
		}
	}
	cmd := &Command{ExtFields: map[string]string{}}
	for i := range MaxExtFields + 1 {
		cmd.ExtFields[strconv.Itoa(i)] = ""
	}
	if _, err := Encode(cmd); !errors.Is(err, ErrInvalidCommand) {
		t.Fatalf("encode of MaxExtFields+1 fields: %v, want ErrInvalidCommand", err)
	}
}
