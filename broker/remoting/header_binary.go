package remoting

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// The ROCKETMQ binary header (RocketMQSerializable), all integers big-endian:
//
//	code int16 | language byte | version int16 | opaque int32 | flag int32 |
//	remarkLen int32 | remark | extLen int32 | ext
//
// ext is a run of keyLen int16 | key | valLen int32 | val, extLen bytes in
// all. Strings are UTF-8; a zero length is Java's null.
const binaryFixedLen = 2 + 1 + 2 + 4 + 4 + 4 + 4

// binaryOpaqueEnd is how many header bytes hold code..flag.
const binaryOpaqueEnd = 2 + 1 + 2 + 4 + 4

func encodeBinaryHeader(c *Command) ([]byte, error) {
	keys := make([]string, 0, len(c.ExtFields))
	extLen := 0
	for k, v := range c.ExtFields {
		if len(k) > math.MaxInt16 {
			return nil, fmt.Errorf("%w: ext-field key of %d bytes (binary header limit %d)", ErrInvalidCommand, len(k), math.MaxInt16)
		}
		keys = append(keys, k)
		extLen += 2 + len(k) + 4 + len(v)
	}
	// Sorted so the same command always encodes to the same bytes.
	slices.Sort(keys)
	n := binaryFixedLen + len(c.Remark) + extLen
	if n > maxHeaderLen {
		return nil, fmt.Errorf("%w: header of %d bytes exceeds %d", ErrInvalidCommand, n, maxHeaderLen)
	}
	b := make([]byte, 0, n)
	b = binary.BigEndian.AppendUint16(b, uint16(c.Code))
	b = append(b, byte(c.Language))
	b = binary.BigEndian.AppendUint16(b, uint16(c.Version))
	b = binary.BigEndian.AppendUint32(b, uint32(c.Opaque))
	b = binary.BigEndian.AppendUint32(b, uint32(c.Flag))
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Remark)))
	b = append(b, c.Remark...)
	b = binary.BigEndian.AppendUint32(b, uint32(extLen))
	for _, k := range keys {
		v := c.ExtFields[k]
		b = binary.BigEndian.AppendUint16(b, uint16(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	return b, nil
}

// binReader reads big-endian fields from a header; each read reports
// false instead of running past the end.
type binReader struct {
	b   []byte
	off int
}

func (r *binReader) left() int { return len(r.b) - r.off }

func (r *binReader) u16() (uint16, bool) {
	if r.left() < 2 {
		return 0, false
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v, true
}

func (r *binReader) u32() (uint32, bool) {
	if r.left() < 4 {
		return 0, false
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v, true
}

// str reads n bytes as a string; n must be within what is left.
func (r *binReader) str(n int64) (string, bool) {
	if n < 0 || n > int64(r.left()) {
		return "", false
	}
	s := string(r.b[r.off : r.off+int(n)])
	r.off += int(n)
	return s, true
}

func decodeBinaryHeader(data []byte, cmd *Command) *DecodeError {
	if len(data) < binaryFixedLen {
		derr := malformed("binary header of %d bytes, need at least %d", len(data), binaryFixedLen)
		if len(data) >= binaryOpaqueEnd {
			derr.HeaderKnown = true
			derr.Opaque = int32(binary.BigEndian.Uint32(data[5:]))
			derr.Flag = int32(binary.BigEndian.Uint32(data[9:]))
		}
		return derr
	}
	r := &binReader{b: data}
	code, _ := r.u16()
	cmd.Code = int16(code)
	cmd.Language = LanguageCode(data[2])
	r.off = 3
	version, _ := r.u16()
	cmd.Version = int16(version)
	opaque, _ := r.u32()
	cmd.Opaque = int32(opaque)
	flag, _ := r.u32()
	cmd.Flag = int32(flag)
	if derr := decodeBinaryRest(r, cmd); derr != nil {
		derr.HeaderKnown = true
		derr.Opaque, derr.Flag = cmd.Opaque, cmd.Flag
		return derr
	}
	return nil
}

// decodeBinaryRest reads remark and ext fields.
func decodeBinaryRest(r *binReader, cmd *Command) *DecodeError {
	remarkLen, _ := r.u32()
	remark, ok := r.str(int64(int32(remarkLen)))
	if !ok {
		return malformed("remark length %d with %d header bytes left", int32(remarkLen), r.left())
	}
	cmd.Remark = remark
	extLen32, ok := r.u32()
	if !ok {
		return malformed("binary header ends before the ext-fields length")
	}
	extLen := int64(int32(extLen32))
	if extLen < 0 || extLen != int64(r.left()) {
		return malformed("ext-fields length %d, but %d header bytes left", extLen, r.left())
	}
	if extLen == 0 {
		return nil
	}
	cmd.ExtFields = make(map[string]string)
	for r.left() > 0 {
		kl, ok := r.u16()
		if !ok {
			return malformed("truncated ext-field key length")
		}
		k, ok := r.str(int64(int16(kl)))
		if !ok {
			return malformed("ext-field key length %d with %d bytes left", int16(kl), r.left())
		}
		vl, ok := r.u32()
		if !ok {
			return malformed("truncated ext-field value length for key %q", k)
		}
		v, ok := r.str(int64(int32(vl)))
		if !ok {
			return malformed("ext-field value length %d for key %q with %d bytes left", int32(vl), k, r.left())
		}
		if _, dup := cmd.ExtFields[k]; !dup && len(cmd.ExtFields) == MaxExtFields {
			return malformed("more than %d ext fields", MaxExtFields)
		}
		cmd.ExtFields[k] = v
	}
	return nil
}
