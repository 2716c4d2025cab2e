package remoting

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
)

// DefaultMaxFrameSize is RocketMQ's com.rocketmq.remoting.frameMaxLength
// default: 16 MiB for a whole frame, length prefix included.
const DefaultMaxFrameSize = 16 << 20

// MaxExtFields bounds the ext fields of a header, received or sent. A
// frame with more is refused as malformed (its request answered with
// SYSTEM_ERROR, as for any header that does not decode), and a command
// with more does not encode. RocketMQ's request and response headers carry
// a few dozen fields at most; without a bound a 16 MiB header of tiny
// fields is some 1.8 million map entries, twenty to thirty-five times the
// frame's size, decoded before MaxInFlightBytes is charged.
const MaxExtFields = 1024

// maxHeaderLen is the largest header the 24-bit length field can describe.
const maxHeaderLen = 1<<24 - 1

// readChunk bounds each step of reading a frame, so memory grows with the
// bytes that actually arrive rather than with what the prefix claims.
const readChunk = 64 << 10

// Encode returns cmd as one frame in the header encoding cmd.SerializeType
// names. It fails with an error wrapping ErrInvalidCommand when the command
// cannot be represented.
func Encode(cmd *Command) ([]byte, error) {
	if len(cmd.ExtFields) > MaxExtFields {
		return nil, fmt.Errorf("%w: %d ext fields, limit %d", ErrInvalidCommand, len(cmd.ExtFields), MaxExtFields)
	}
	var header []byte
	var err error
	switch cmd.SerializeType {
	case SerializeJSON:
		header, err = encodeJSONHeader(cmd)
	case SerializeRocketMQ:
		header, err = encodeBinaryHeader(cmd)
	default:
		return nil, fmt.Errorf("%w: serialize type %d", ErrInvalidCommand, byte(cmd.SerializeType))
	}
	if err != nil {
		return nil, err
	}
	if len(header) > maxHeaderLen {
		return nil, fmt.Errorf("%w: header of %d bytes exceeds %d", ErrInvalidCommand, len(header), maxHeaderLen)
	}
	total := int64(4) + int64(len(header)) + int64(len(cmd.Body))
	if total > math.MaxInt32 {
		return nil, fmt.Errorf("%w: frame of %d bytes", ErrInvalidCommand, total)
	}
	frame := make([]byte, 0, 4+total)
	frame = binary.BigEndian.AppendUint32(frame, uint32(total))
	frame = binary.BigEndian.AppendUint32(frame, uint32(cmd.SerializeType)<<24|uint32(len(header)))
	frame = append(frame, header...)
	frame = append(frame, cmd.Body...)
	return frame, nil
}

// Decode reads one frame from r. maxFrameSize bounds the whole frame,
// length prefix included, as RocketMQ's NettyDecoder does; zero or less
// means [DefaultMaxFrameSize].
//
// Bad input yields a [*DecodeError] wrapping ErrFrameTooLarge,
// ErrMalformedFrame or ErrCodeOutOfRange; a frame claiming more than
// maxFrameSize is refused after its 4-byte prefix, before anything is
// allocated for it. End of input before a frame starts is io.EOF, inside a
// frame io.ErrUnexpectedEOF; other read errors are returned as they are.
func Decode(r io.Reader, maxFrameSize int) (*Command, error) {
	if maxFrameSize <= 0 {
		maxFrameSize = DefaultMaxFrameSize
	}
	var prefix [8]byte
	if _, err := io.ReadFull(r, prefix[:4]); err != nil {
		return nil, err
	}
	length := int64(int32(binary.BigEndian.Uint32(prefix[:4])))
	if length < 0 {
		return nil, malformed("negative frame length %d", length)
	}
	if length+4 > int64(maxFrameSize) {
		return nil, &DecodeError{Err: ErrFrameTooLarge, Reason: fmt.Sprintf("frame of %d bytes, limit %d", length+4, maxFrameSize)}
	}
	if length < 4 {
		return nil, malformed("frame length %d leaves no room for the header length", length)
	}
	if _, err := io.ReadFull(r, prefix[4:]); err != nil {
		return nil, unexpected(err)
	}
	word := binary.BigEndian.Uint32(prefix[4:])
	st := SerializeType(word >> 24)
	headerLen := int64(word & maxHeaderLen)
	if st != SerializeJSON && st != SerializeRocketMQ {
		return nil, malformed("unknown serialize type %d", byte(st))
	}
	if headerLen > length-4 {
		return nil, malformed("header length %d exceeds frame length %d", headerLen, length)
	}
	rest, err := readBounded(r, int(length-4))
	if err != nil {
		return nil, unexpected(err)
	}
	cmd := &Command{SerializeType: st}
	if body := rest[headerLen:]; len(body) > 0 {
		cmd.Body = body[:len(body):len(body)]
	}
	var derr *DecodeError
	if st == SerializeJSON {
		derr = decodeJSONHeader(rest[:headerLen], cmd)
	} else {
		derr = decodeBinaryHeader(rest[:headerLen], cmd)
	}
	if derr != nil {
		derr.InSync = true
		derr.SerializeType = st
		return nil, derr
	}
	return cmd, nil
}

// readBounded reads exactly n bytes, growing its buffer as data arrives.
func readBounded(r io.Reader, n int) ([]byte, error) {
	if n <= readChunk {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	b := make([]byte, 0, readChunk)
	for len(b) < n {
		step := min(n-len(b), max(len(b), readChunk))
		b = slices.Grow(b, step)
		if _, err := io.ReadFull(r, b[len(b):len(b)+step]); err != nil {
			return nil, err
		}
		b = b[:len(b)+step]
	}
	return b, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
