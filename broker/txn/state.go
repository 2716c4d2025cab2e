package txn

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/halfbackmq/halfback/message"
)

// Status is where a transaction stands.
type Status uint8

// Transaction statuses.
const (
	// Pending: stored, no outcome yet; checked back when due.
	Pending Status = iota + 1
	// Parked: checked CheckMax times without an answer; kept, not checked
	// until resumed, still resolvable.
	Parked
	// Committed: the message was written to its real topic.
	Committed
	// RolledBack: the message will never be delivered.
	RolledBack
)

func (s Status) String() string {
	switch s {
	case Pending:
		return "pending"
	case Parked:
		return "parked"
	case Committed:
		return "committed"
	case RolledBack:
		return "rolled-back"
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

func (s Status) live() bool { return s == Pending || s == Parked }

// Outcome is what END_TRANSACTION asks for.
type Outcome uint8

// Outcomes, as END_TRANSACTION's commitOrRollback says them.
const (
	Unknown Outcome = iota
	Commit
	Rollback
)

func (o Outcome) String() string {
	switch o {
	case Commit:
		return "commit"
	case Rollback:
		return "rollback"
	}
	return "unknown"
}

// OutcomeFromSysFlag maps END_TRANSACTION's commitOrRollback (a
// transaction type: 8 commit, 12 rollback, 0 unknown) to an Outcome.
func OutcomeFromSysFlag(t int32) (Outcome, error) {
	switch t {
	case message.TransactionCommitType:
		return Commit, nil
	case message.TransactionRollbackType:
		return Rollback, nil
	case message.TransactionNotType:
		return Unknown, nil
	}
	return Unknown, fmt.Errorf("commitOrRollback %d is not 0, 8 or 12", t)
}

// status a resolving outcome leads to.
func (o Outcome) status() Status {
	if o == Commit {
		return Committed
	}
	return RolledBack
}

// Txn describes one transaction.
type Txn struct {
	// HalfOffset is the half record's commit-log offset: the transaction's
	// identity inside the broker (END_TRANSACTION's commitLogOffset).
	HalfOffset int64 `json:"halfOffset"`
	// QueueOffset is the half record's offset in HalfTopic
	// (END_TRANSACTION's tranStateTableOffset).
	QueueOffset int64 `json:"queueOffset"`
	// MsgID is the half record's offset message id.
	MsgID string `json:"msgId"`
	// TransactionID is the message's UNIQ_KEY.
	TransactionID string `json:"transactionId"`
	// Group is the producer group.
	Group string `json:"producerGroup"`
	// Topic is the real topic the message goes to on commit.
	Topic string `json:"topic"`
	// Keys are the message's KEYS.
	Keys string `json:"keys,omitempty"`
	// Status is where it stands.
	Status Status `json:"-"`
	// StatusName is Status as text.
	StatusName string `json:"status"`
	// Checks is how many checks reached a producer.
	Checks int `json:"checks"`
	// Stored is when the half message was stored.
	Stored time.Time `json:"stored"`
	// NextCheck is when it is checked next (zero unless pending).
	NextCheck time.Time `json:"nextCheck,omitzero"`
}

// entry is a transaction's state. Fields are guarded by Service.mu.
type entry struct {
	half        int64
	queueOffset int64
	content     int64 // record holding the message: the half, or its parked copy
	storeMs     int64
	nextCheckMs int64
	checks      int32
	status      Status
	group       string
	topic       string
	uniq        string
	keys        string
	msgID       string

	resolving chan struct{} // non-nil while an outcome is being written
}

func (e *entry) txn() Txn {
	t := Txn{HalfOffset: e.half, QueueOffset: e.queueOffset, MsgID: e.msgID, TransactionID: e.uniq,
		Group: e.group, Topic: e.topic, Keys: e.keys, Status: e.status, StatusName: e.status.String(),
		Checks: int(e.checks), Stored: time.UnixMilli(e.storeMs)}
	if e.status == Pending {
		t.NextCheck = time.UnixMilli(e.nextCheckMs)
	}
	return t
}

// Database keys: prefix byte + big-endian offset.
const (
	prefixLive     = 'p' // + half offset: a pending or parked entry
	prefixResolved = 'r' // + half offset: a committed or rolled back entry
	// prefixNoted + the offset of a record that changed a transaction's
	// state, its half offset as value: kept until a checkpoint covers the
	// record (see Service.persist).
	prefixNoted = 'n'
)

var keyCovered = []byte("covered")

func stateKey(prefix byte, half int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefix}, uint64(half))
}

func (e *entry) key() []byte {
	if e.status.live() {
		return stateKey(prefixLive, e.half)
	}
	return stateKey(prefixResolved, e.half)
}

const entryVersion = 1

func (e *entry) encode() []byte {
	b := []byte{entryVersion, byte(e.status)}
	for _, v := range []int64{e.half, e.queueOffset, e.content, e.storeMs, e.nextCheckMs, int64(e.checks)} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	for _, s := range []string{e.group, e.topic, e.uniq, e.keys, e.msgID} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func decodeEntry(b []byte) (*entry, error) {
	if len(b) < 2+6*8 || b[0] != entryVersion {
		return nil, fmt.Errorf("txn: state entry of %d bytes is damaged", len(b))
	}
	e := &entry{status: Status(b[1])}
	ints := []*int64{&e.half, &e.queueOffset, &e.content, &e.storeMs, &e.nextCheckMs}
	for i, p := range ints {
		*p = int64(binary.BigEndian.Uint64(b[2+8*i:]))
	}
	checks := int64(binary.BigEndian.Uint64(b[2+8*5:]))
	if checks < 0 || checks > math.MaxInt32 {
		return nil, fmt.Errorf("txn: state entry has a bad check count %d", checks)
	}
	e.checks = int32(checks)
	rest := b[2+6*8:]
	for _, p := range []*string{&e.group, &e.topic, &e.uniq, &e.keys, &e.msgID} {
		n, k := binary.Uvarint(rest)
		if k <= 0 || uint64(len(rest)-k) < n {
			return nil, fmt.Errorf("txn: state entry string is damaged")
		}
		*p = string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
	}
	return e, nil
}
