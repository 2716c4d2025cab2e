package message

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net/netip"
)

// Magic codes of stored records.
const (
	// MagicCode marks a message record whose topic length is one byte (RocketMQ V1).
	MagicCode = int32(-626843481) // 0xDAA320A7
	// BlankMagicCode marks the filler that ends a commit-log segment.
	BlankMagicCode = int32(-875286124) // 0xCBD43194
)

const (
	magicU32      = uint32(0xDAA320A7)
	blankMagicU32 = uint32(0xCBD43194)
)

// Bits of a record's sysFlag, as RocketMQ defines them.
const (
	FlagCompressed          = int32(1)
	FlagMultiTags           = int32(1 << 1)
	TransactionNotType      = int32(0)
	TransactionPreparedType = int32(1 << 2)
	TransactionCommitType   = int32(2 << 2)
	TransactionRollbackType = int32(3 << 2)
	FlagBornHostV6          = int32(1 << 4)
	FlagStoreHostV6         = int32(1 << 5)

	transactionMask = int32(3 << 2)
)

// TransactionType returns the transaction bits of sysFlag.
func TransactionType(sysFlag int32) int32 { return sysFlag & transactionMask }

// WithTransactionType returns sysFlag with its transaction bits set to t.
func WithTransactionType(sysFlag, t int32) int32 { return sysFlag&^transactionMask | t }

// Fixed positions inside a record (independent of the host widths).
const (
	offTotalSize   = 0
	offMagic       = 4
	offBodyCRC     = 8
	offQueueID     = 12
	offFlag        = 16
	offQueueOffset = 20
	offPhysOffset  = 28
	offSysFlag     = 36
	offBornTs      = 40
	offBornHost    = 48

	// BlankHeaderSize is the size of a blank record's header (size + magic).
	BlankHeaderSize = 8
	// MaxTopicLength is the longest topic a record can carry.
	MaxTopicLength = 127
	// MaxPropertiesLength is the longest encoded property string a record can carry.
	MaxPropertiesLength = 32767
)

// Message is what a producer hands the store: everything a record holds
// except the offsets and the store timestamp, which the store assigns.
type Message struct {
	Topic                     string
	QueueID                   int32
	Flag                      int32
	SysFlag                   int32
	BornTimestamp             int64 // ms since the epoch
	BornHost                  netip.AddrPort
	StoreHost                 netip.AddrPort
	ReconsumeTimes            int32
	PreparedTransactionOffset int64
	Body                      []byte
	// Properties is the wire form (name\x01value\x02...), kept byte for byte.
	Properties string
}

// Ext is a decoded record: the message plus what the store assigned.
type Ext struct {
	Message
	StoreSize       int32
	BodyCRC         int32
	QueueOffset     int64
	CommitLogOffset int64
	StoreTimestamp  int64 // ms since the epoch
}

// MsgID returns the record's offset message id (store host + physical offset).
func (e *Ext) MsgID() string { return OffsetMsgID(e.StoreHost, e.CommitLogOffset) }

// Property returns one property of the record.
func (e *Ext) Property(name string) string {
	v, _ := Property(e.Properties, name)
	return v
}

func hostLen(v6 bool) int {
	if v6 {
		return 20
	}
	return 8
}

func isV6(a netip.AddrPort) bool { return a.Addr().Is6() && !a.Addr().Is4In6() }

// RecordSize returns the encoded size of m, or an error if m cannot be encoded.
func RecordSize(m *Message) (int, error) {
	if len(m.Topic) > MaxTopicLength {
		return 0, fmt.Errorf("%w: %d bytes", ErrTopicTooLong, len(m.Topic))
	}
	if len(m.Properties) > MaxPropertiesLength {
		return 0, fmt.Errorf("%w: %d bytes", ErrPropertiesTooLong, len(m.Properties))
	}
	return 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + hostLen(isV6(m.BornHost)) + 8 + hostLen(isV6(m.StoreHost)) +
		4 + 8 + 4 + len(m.Body) + 1 + len(m.Topic) + 2 + len(m.Properties), nil
}

// BodyCRC is RocketMQ's body checksum: CRC-32 (IEEE) with the sign bit cleared.
func BodyCRC(body []byte) int32 { return int32(crc32.ChecksumIEEE(body) & 0x7FFFFFFF) }

// AppendRecord appends the record for m to dst with zero queue offset,
// physical offset and store timestamp; [SetOffsets] fills them in later.
func AppendRecord(dst []byte, m *Message) ([]byte, error) { return appendRecord(dst, m, false) }

// AppendSealableRecord is AppendRecord with an empty checksum slot after
// m's properties (any slot they end with is replaced), ready for [Seal];
// it spares building the slotted property string.
func AppendSealableRecord(dst []byte, m *Message) ([]byte, error) { return appendRecord(dst, m, true) }

// SealableRecordSize is RecordSize for [AppendSealableRecord].
func SealableRecordSize(m *Message) (int, error) {
	mm := *m
	mm.Properties = sealProps(m.Properties)
	n, err := RecordSize(&mm)
	if err == nil && len(mm.Properties)+CRCSlotSize > MaxPropertiesLength {
		return 0, fmt.Errorf("%w: %d bytes", ErrPropertiesTooLong, len(mm.Properties)+CRCSlotSize)
	}
	return n + CRCSlotSize, err
}

func appendRecord(dst []byte, m *Message, slot bool) ([]byte, error) {
	props := m.Properties
	var size int
	var err error
	if slot {
		props = sealProps(props)
		size, err = SealableRecordSize(m)
	} else {
		size, err = RecordSize(m)
	}
	if err != nil {
		return dst, err
	}
	sysFlag := m.SysFlag &^ (FlagBornHostV6 | FlagStoreHostV6)
	if isV6(m.BornHost) {
		sysFlag |= FlagBornHostV6
	}
	if isV6(m.StoreHost) {
		sysFlag |= FlagStoreHostV6
	}
	b := binary.BigEndian
	dst = b.AppendUint32(dst, uint32(size))
	dst = b.AppendUint32(dst, magicU32)
	dst = b.AppendUint32(dst, uint32(BodyCRC(m.Body)))
	dst = b.AppendUint32(dst, uint32(m.QueueID))
	dst = b.AppendUint32(dst, uint32(m.Flag))
	dst = b.AppendUint64(dst, 0) // queue offset
	dst = b.AppendUint64(dst, 0) // physical offset
	dst = b.AppendUint32(dst, uint32(sysFlag))
	dst = b.AppendUint64(dst, uint64(m.BornTimestamp))
	dst = appendHost(dst, m.BornHost)
	dst = b.AppendUint64(dst, 0) // store timestamp
	dst = appendHost(dst, m.StoreHost)
	dst = b.AppendUint32(dst, uint32(m.ReconsumeTimes))
	dst = b.AppendUint64(dst, uint64(m.PreparedTransactionOffset))
	dst = b.AppendUint32(dst, uint32(len(m.Body)))
	dst = append(dst, m.Body...)
	dst = append(dst, byte(len(m.Topic)))
	dst = append(dst, m.Topic...)
	if slot {
		dst = b.AppendUint16(dst, uint16(len(props)+CRCSlotSize))
		dst = append(dst, props...)
		return append(dst, crcSlot...), nil
	}
	dst = b.AppendUint16(dst, uint16(len(props)))
	dst = append(dst, props...)
	return dst, nil
}

func appendHost(dst []byte, a netip.AddrPort) []byte {
	if isV6(a) {
		ip := a.Addr().As16()
		dst = append(dst, ip[:]...)
	} else {
		ip := a.Addr().Unmap()
		if !ip.Is4() {
			ip = netip.IPv4Unspecified()
		}
		v4 := ip.As4()
		dst = append(dst, v4[:]...)
	}
	return binary.BigEndian.AppendUint32(dst, uint32(a.Port()))
}

// SetOffsets writes the queue offset, physical offset and store timestamp
// into an encoded record in place.
func SetOffsets(rec []byte, queueOffset, physOffset, storeTimestamp int64) {
	b := binary.BigEndian
	b.PutUint64(rec[offQueueOffset:], uint64(queueOffset))
	b.PutUint64(rec[offPhysOffset:], uint64(physOffset))
	sysFlag := int32(b.Uint32(rec[offSysFlag:]))
	b.PutUint64(rec[offBornHost+hostLen(sysFlag&FlagBornHostV6 != 0):], uint64(storeTimestamp))
}

// PhysicalOffsetHeaderLen is how many leading bytes of a record
// PhysicalOffset needs (every record is longer).
const PhysicalOffsetHeaderLen = offPhysOffset + 8

// PhysicalOffset returns the physical (commit-log) offset an encoded
// record says it was stored at, or false if rec is too short to hold one.
// A store compares it with where it found the record: bytes that are not
// a record of this position (a reused file's old records) fail.
func PhysicalOffset(rec []byte) (int64, bool) {
	if len(rec) < offPhysOffset+8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(rec[offPhysOffset:])), true
}

// SetReconsumeTimes rewrites the reconsume count of an encoded record in place.
func SetReconsumeTimes(rec []byte, n int32) {
	sysFlag := int32(binary.BigEndian.Uint32(rec[offSysFlag:]))
	pos := offBornHost + hostLen(sysFlag&FlagBornHostV6 != 0) + 8 + hostLen(sysFlag&FlagStoreHostV6 != 0)
	binary.BigEndian.PutUint32(rec[pos:], uint32(n))
}

// AppendBlank appends a blank record of total size n (n >= BlankHeaderSize).
func AppendBlank(dst []byte, n int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	return binary.BigEndian.AppendUint32(dst, blankMagicU32)
}

// PeekHeader reads the total size and magic code at the start of b.
func PeekHeader(b []byte) (size int32, magic int32, err error) {
	if len(b) < BlankHeaderSize {
		return 0, 0, ErrTruncated
	}
	return int32(binary.BigEndian.Uint32(b)), int32(binary.BigEndian.Uint32(b[4:])), nil
}

// Decode decodes the record at the start of b and returns it with its size.
// It checks the magic code, every length field, the body CRC and, when the
// record is sealed, the record checksum; a blank record returns ErrBlank
// with its size. The returned Ext aliases b. Use it for records from any
// RocketMQ broker.
func Decode(b []byte) (Ext, int, error) { return decode(b, false) }

// DecodeSealed is Decode for records this project's store wrote: a record
// without a checksum slot is rejected with ErrBadCRC, so a corrupted slot
// cannot pass as an unsealed record.
func DecodeSealed(b []byte) (Ext, int, error) { return decode(b, true) }

func decode(b []byte, requireSeal bool) (Ext, int, error) {
	var e Ext
	size, magic, err := PeekHeader(b)
	if err != nil {
		return e, 0, err
	}
	switch magic {
	case BlankMagicCode:
		if size < BlankHeaderSize {
			return e, 0, fmt.Errorf("%w: blank size %d", ErrBadLength, size)
		}
		return e, int(size), ErrBlank
	case MagicCode:
	default:
		return e, 0, fmt.Errorf("%w: %#x", ErrBadMagic, uint32(magic))
	}
	if size < 0 || int(size) > len(b) {
		if size < 0 {
			return e, 0, fmt.Errorf("%w: total size %d", ErrBadLength, size)
		}
		return e, 0, fmt.Errorf("%w: need %d bytes, have %d", ErrTruncated, size, len(b))
	}
	r := reader{b: b[:size], pos: offBodyCRC}
	e.StoreSize = size
	e.BodyCRC = r.i32()
	e.QueueID = r.i32()
	e.Flag = r.i32()
	e.QueueOffset = r.i64()
	e.CommitLogOffset = r.i64()
	e.SysFlag = r.i32()
	e.BornTimestamp = r.i64()
	e.BornHost = r.host(e.SysFlag&FlagBornHostV6 != 0)
	e.StoreTimestamp = r.i64()
	e.StoreHost = r.host(e.SysFlag&FlagStoreHostV6 != 0)
	e.ReconsumeTimes = r.i32()
	e.PreparedTransactionOffset = r.i64()
	e.Body = r.bytes(int(r.i32()))
	bodyEnd := r.pos
	e.Topic = string(r.bytes(int(r.u8())))
	e.Properties = string(r.bytes(int(r.u16())))
	if r.err != nil {
		return Ext{}, 0, r.err
	}
	if r.pos != int(size) {
		return Ext{}, 0, fmt.Errorf("%w: fields end at %d, record size %d", ErrBadLength, r.pos, size)
	}
	if BodyCRC(e.Body) != e.BodyCRC {
		return Ext{}, 0, ErrBadCRC
	}
	if requireSeal && !hasSlot(b[:size]) {
		return Ext{}, 0, fmt.Errorf("%w: record is not sealed", ErrBadCRC)
	}
	if !verifySeal(b[:size], bodyEnd-len(e.Body), bodyEnd) {
		return Ext{}, 0, fmt.Errorf("%w: record checksum", ErrBadCRC)
	}
	e.Properties = StripCRCSlot(e.Properties)
	return e, int(size), nil
}

// DecodeAll decodes consecutive records, as a pull response body carries them.
func DecodeAll(b []byte) ([]Ext, error) {
	var out []Ext
	for len(b) > 0 {
		e, n, err := Decode(b)
		if err != nil {
			return out, err
		}
		out = append(out, e)
		b = b[n:]
	}
	return out, nil
}

type reader struct {
	b   []byte
	pos int
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || r.pos+n > len(r.b) {
		r.err = fmt.Errorf("%w: field of %d bytes at %d overruns record of %d", ErrBadLength, n, r.pos, len(r.b))
		return nil
	}
	s := r.b[r.pos : r.pos+n]
	r.pos += n
	return s
}

func (r *reader) i32() int32 {
	if s := r.take(4); s != nil {
		return int32(binary.BigEndian.Uint32(s))
	}
	return 0
}

func (r *reader) i64() int64 {
	if s := r.take(8); s != nil {
		return int64(binary.BigEndian.Uint64(s))
	}
	return 0
}

func (r *reader) u8() uint8 {
	if s := r.take(1); s != nil {
		return s[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if s := r.take(2); s != nil {
		return binary.BigEndian.Uint16(s)
	}
	return 0
}

func (r *reader) bytes(n int) []byte { return r.take(n) }

func (r *reader) host(v6 bool) netip.AddrPort {
	n := 4
	if v6 {
		n = 16
	}
	ip := r.take(n)
	port := r.i32()
	if r.err != nil {
		return netip.AddrPort{}
	}
	addr, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(addr, uint16(port))
}

// PropertiesHeaderSize is how much of a record's start [TailOffset]
// needs: the fixed fields up to and including the body length, with both
// hosts IPv6 (the longest they run).
const PropertiesHeaderSize = offBornHost + 20 + 8 + 20 + 4 + 8 + 4

// TailOffset returns where the tail of a record of size bytes starts (its
// topic length, right after the body), given head, the record's first
// bytes: at least PropertiesHeaderSize of them, or the whole record. It
// lets a reader that needs only the properties (a broker's SQL92 filter,
// as RocketMQ's MessageDecoder.decodeProperties) skip the body; it checks
// the magic code and that the body fits, not the checksums.
func TailOffset(head []byte, size int) (int, error) {
	got, magic, err := PeekHeader(head)
	if err != nil {
		return 0, err
	}
	switch {
	case magic != MagicCode:
		return 0, fmt.Errorf("%w: %#x", ErrBadMagic, uint32(magic))
	case int(got) != size:
		return 0, fmt.Errorf("%w: total size %d, want %d", ErrBadLength, got, size)
	case len(head) < min(size, PropertiesHeaderSize) || len(head) < offSysFlag+4:
		return 0, fmt.Errorf("%w: need %d bytes of the header, have %d", ErrTruncated, min(size, PropertiesHeaderSize), len(head))
	}
	sysFlag := int32(binary.BigEndian.Uint32(head[offSysFlag:]))
	pos := offBornHost + hostLen(sysFlag&FlagBornHostV6 != 0) + 8 + hostLen(sysFlag&FlagStoreHostV6 != 0) + 4 + 8
	if pos+4 > len(head) {
		return 0, fmt.Errorf("%w: header of %d bytes overruns record of %d", ErrBadLength, pos+4, size)
	}
	end := pos + 4 + int(binary.BigEndian.Uint32(head[pos:]))
	if end < pos+4 || end > size {
		return 0, fmt.Errorf("%w: body ends at %d, record size %d", ErrBadLength, end, size)
	}
	return end, nil
}

// DecodeTail decodes a record's tail, from [TailOffset] to the record's
// end: its topic and its properties (without a checksum slot, as Decode
// returns them).
func DecodeTail(tail []byte) (topic, props string, err error) {
	r := reader{b: tail}
	topicB := r.bytes(int(r.u8()))
	propsB := r.bytes(int(r.u16()))
	if r.err != nil {
		return "", "", r.err
	}
	if r.pos != len(tail) {
		return "", "", fmt.Errorf("%w: fields end at %d, tail of %d", ErrBadLength, r.pos, len(tail))
	}
	return string(topicB), StripCRCSlot(string(propsB)), nil
}
