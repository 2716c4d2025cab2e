package message

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"unicode/utf16"
)

// OffsetMsgID returns RocketMQ's offset message id: the upper-case hex of the
// store host's address, its port (4 bytes) and the physical offset (8 bytes).
func OffsetMsgID(storeHost netip.AddrPort, physOffset int64) string {
	var raw [28]byte
	b := appendHost(raw[:0], storeHost)
	b = binary.BigEndian.AppendUint64(b, uint64(physOffset))
	const digits = "0123456789ABCDEF"
	var out [56]byte
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&0xF]
	}
	return string(out[:2*len(b)])
}

// ParseOffsetMsgID splits an offset message id into store host and physical offset.
func ParseOffsetMsgID(id string) (netip.AddrPort, int64, error) {
	if len(id) != 32 && len(id) != 56 {
		return netip.AddrPort{}, 0, fmt.Errorf("%w: %q has %d characters, want 32 or 56", ErrBadMessageID, id, len(id))
	}
	b, err := hex.DecodeString(id)
	if err != nil {
		return netip.AddrPort{}, 0, fmt.Errorf("%w: %q: %v", ErrBadMessageID, id, err)
	}
	ipLen := len(b) - 12
	addr, _ := netip.AddrFromSlice(b[:ipLen])
	port := binary.BigEndian.Uint32(b[ipLen:])
	off := int64(binary.BigEndian.Uint64(b[ipLen+4:]))
	if off < 0 || port > 0xFFFF {
		return netip.AddrPort{}, 0, fmt.Errorf("%w: %q", ErrBadMessageID, id)
	}
	return netip.AddrPortFrom(addr, uint16(port)), off, nil
}

// TagsCode is the tag hash a consume queue stores: Java's String.hashCode of
// the tag, so brokers and clients of any language agree. An empty tag is 0.
func TagsCode(tag string) int64 {
	var h int32
	for _, r := range tag {
		if r < 0x10000 {
			h = 31*h + int32(r)
			continue
		}
		r1, r2 := utf16.EncodeRune(r)
		h = 31*h + int32(r1)
		h = 31*h + int32(r2)
	}
	return int64(h)
}

// ValidateTopic checks a topic name the way RocketMQ does: 1 to 127
// characters from [%|a-zA-Z0-9_-].
func ValidateTopic(topic string) error {
	return validateName(ErrBadTopic, "topic", topic, MaxTopicLength)
}

// MaxGroupLength is the longest producer or consumer group name RocketMQ's
// clients accept (Validators.CHARACTER_MAX_LENGTH).
const MaxGroupLength = 255

// ValidateGroup checks a group name the way RocketMQ's clients do: 1 to
// 255 characters from [%|a-zA-Z0-9_-]. (A consumer group's retry topic,
// %RETRY%<group>, must also be a valid topic, which takes 120 or fewer.)
func ValidateGroup(group string) error {
	return validateName(ErrBadGroup, "group", group, MaxGroupLength)
}

// validateName checks a topic or group name: 1 to limit characters from
// [%|a-zA-Z0-9_-].
func validateName(sentinel error, kind, name string, limit int) error {
	if name == "" {
		return fmt.Errorf("%w: empty %s", sentinel, kind)
	}
	if len(name) > limit {
		return fmt.Errorf("%w: %d characters, at most %d", sentinel, len(name), limit)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '%' || c == '|' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q has illegal character %q", sentinel, name, c)
		}
	}
	return nil
}
