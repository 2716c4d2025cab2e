package message

import (
	"encoding/binary"
	"hash/crc32"
	"strconv"
	"strings"
)

// PropertyCRC32 names the record checksum property. As with RocketMQ 5's
// appended CRC property it is the last property of a stored record and holds
// ten decimal digits: the CRC-32 (IEEE) of the whole record except the body
// (which bodyCRC covers) and the digits themselves. It lets recovery reject a
// record whose header, topic or properties were torn or corrupted, which the
// body CRC alone cannot see.
const PropertyCRC32 = "__CRC32#"

// crcSlot is the property pair a sealed record ends with, digits zeroed.
const crcSlot = PropertyCRC32 + "\x01" + "0000000000" + "\x02"

// CRCSlotSize is how many property bytes sealing adds to a record.
const CRCSlotSize = len(crcSlot)

// WithCRCSlot returns props with an empty checksum slot as its last pair,
// replacing any slot it already ends with.
func WithCRCSlot(props string) string {
	return StripCRCSlot(props) + crcSlot
}

// StripCRCSlot removes a trailing checksum pair.
func StripCRCSlot(props string) string {
	if len(props) >= CRCSlotSize && strings.HasPrefix(props[len(props)-CRCSlotSize:], PropertyCRC32+"\x01") && props[len(props)-1] == propertySeparator {
		return props[:len(props)-CRCSlotSize]
	}
	return props
}

// sealProps returns props ready for a checksum slot after them: without
// a slot they end with, and ending with the property separator (added
// when the last pair lacks it, as RocketMQ 5 does) so that the slot is a
// pair of its own rather than part of the last value.
func sealProps(props string) string {
	props = StripCRCSlot(props)
	if props != "" && props[len(props)-1] != propertySeparator {
		props += string(propertySeparator)
	}
	return props
}

// bodyRange returns where the body of an encoded record starts and ends.
func bodyRange(rec []byte) (int, int) {
	sysFlag := int32(binary.BigEndian.Uint32(rec[offSysFlag:]))
	pos := offBornHost + hostLen(sysFlag&FlagBornHostV6 != 0) + 8 + hostLen(sysFlag&FlagStoreHostV6 != 0) + 4 + 8
	n := int(binary.BigEndian.Uint32(rec[pos:]))
	return pos + 4, pos + 4 + n
}

func recordCRC(rec []byte, bodyStart, bodyEnd int) uint32 {
	c := crc32.ChecksumIEEE(rec[:bodyStart])
	return crc32.Update(c, crc32.IEEETable, rec[bodyEnd:len(rec)-11])
}

// Seal writes the record checksum into the slot of an encoded record whose
// properties end with one (written by AppendSealableRecord, or by
// AppendRecord on properties from WithCRCSlot). Call it after SetOffsets.
func Seal(rec []byte) {
	if !hasSlot(rec) {
		return
	}
	start, end := bodyRange(rec)
	digits := strconv.AppendUint(make([]byte, 0, 10), uint64(recordCRC(rec, start, end)), 10)
	slot := rec[len(rec)-11 : len(rec)-1]
	for i := range slot {
		slot[i] = '0'
	}
	copy(slot[10-len(digits):], digits)
}

func hasSlot(rec []byte) bool {
	if len(rec) < CRCSlotSize {
		return false
	}
	tail := rec[len(rec)-CRCSlotSize:]
	return string(tail[:len(PropertyCRC32)+1]) == PropertyCRC32+"\x01" && tail[len(tail)-1] == propertySeparator
}

// verifySeal checks a sealed record's checksum; records without a slot pass.
func verifySeal(rec []byte, bodyStart, bodyEnd int) bool {
	if !hasSlot(rec) {
		return true
	}
	v, err := strconv.ParseUint(string(rec[len(rec)-11:len(rec)-1]), 10, 32)
	return err == nil && uint32(v) == recordCRC(rec, bodyStart, bodyEnd)
}
