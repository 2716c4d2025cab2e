package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
)

// checkpointData is what the checkpoint file records. Dispatched is a
// record boundary up to which the commit log, consume queues and index were
// all durable when it was written; LogEnd is the commit log's end and is
// trusted only after a clean shutdown.
type checkpointData struct {
	Dispatched int64
	LogEnd     int64
	Time       int64 // ms since the epoch
}

const checkpointMagic = 0x48424350 // "HBCP"

func (c checkpointData) encode() []byte {
	b := binary.BigEndian.AppendUint32(nil, checkpointMagic)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Dispatched))
	b = binary.BigEndian.AppendUint64(b, uint64(c.LogEnd))
	b = binary.BigEndian.AppendUint64(b, uint64(c.Time))
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

// readCheckpoint returns the checkpoint in path; ok is false if there is none.
func readCheckpoint(path string) (c checkpointData, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, false, nil
	}
	if err != nil {
		return c, false, err
	}
	if len(b) != 32 || binary.BigEndian.Uint32(b) != checkpointMagic || crc32.ChecksumIEEE(b[:28]) != binary.BigEndian.Uint32(b[28:]) {
		return c, false, fmt.Errorf("%w: checkpoint file %s is damaged", ErrCorrupt, path)
	}
	c.Dispatched = int64(binary.BigEndian.Uint64(b[4:]))
	c.LogEnd = int64(binary.BigEndian.Uint64(b[12:]))
	c.Time = int64(binary.BigEndian.Uint64(b[20:]))
	return c, true, nil
}

func (s *Store) checkpointPath() string { return s.opts.Dir + "/checkpoint" }

// checkpoint makes everything dispatched so far durable (commit log first,
// then consume queues, then the index) and records the position. A failed
// fsync fails the store: the pages it was to write may be gone while the
// page cache still shows them, so no later checkpoint may vouch for them.
// The last good checkpoint stays, and the next Open rebuilds from it.
func (s *Store) checkpoint(final bool) error {
	s.cpMu.Lock()
	defer s.cpMu.Unlock()
	if err := s.failure(); err != nil {
		return err
	}
	d := s.dispatched.Load()
	if s.durable.Load() < d {
		if err := s.flushCommitLog(); err != nil {
			return err
		}
	}
	if err := s.cqs.each(func(_ queueKey, q *consumeQueue) error { return q.sync() }); err != nil {
		return s.fail(fmt.Errorf("consume queue fsync: %w", err))
	}
	if err := s.idx.sync(); err != nil {
		return s.fail(fmt.Errorf("index fsync: %w", err))
	}
	c := checkpointData{Dispatched: d, Time: s.opts.Now().UnixMilli()}
	if final {
		c.LogEnd = s.written.Load()
	}
	if err := writeFileAtomic(s.checkpointPath(), c.encode()); err != nil {
		return err
	}
	s.checkpointed.Store(d)
	return nil
}
