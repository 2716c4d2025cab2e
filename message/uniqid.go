package message

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// uniqCounter is shared by every generator of the process, as RocketMQ's.
var uniqCounter atomic.Uint32

// UniqIDs makes message ids (the UNIQ_KEY property a producer sets) in the
// shape of RocketMQ's MessageClientIDSetter: 32 upper-case hex digits of
// the client's IPv4 address (4 bytes), the pid (2), a value fixed per
// generator (4), the ms since the start of the month (4) and a counter
// (2). Ids are unique unless one process makes more than 65536 in the same
// millisecond. Safe for concurrent use.
type UniqIDs struct {
	prefix [10]byte
}

// NewUniqIDs returns a generator for a client at ip (an IPv4 address;
// anything else counts as 127.0.0.1).
func NewUniqIDs(ip net.IP) *UniqIDs {
	u := &UniqIDs{}
	if ip = ip.To4(); ip == nil {
		ip = net.IPv4(127, 0, 0, 1).To4()
	}
	copy(u.prefix[:4], ip)
	binary.BigEndian.PutUint16(u.prefix[4:], uint16(os.Getpid()))
	binary.BigEndian.PutUint32(u.prefix[6:], rand.Uint32())
	return u
}

// Next returns a fresh id.
func (u *UniqIDs) Next() string {
	var b [16]byte
	copy(b[:], u.prefix[:])
	now := time.Now()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, now.Location())
	binary.BigEndian.PutUint32(b[10:], uint32(now.Sub(month).Milliseconds()))
	binary.BigEndian.PutUint16(b[14:], uint16(uniqCounter.Add(1)))
	return strings.ToUpper(hex.EncodeToString(b[:]))
}
