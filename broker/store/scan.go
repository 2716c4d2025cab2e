package store

import (
	"errors"
	"fmt"

	"github.com/halfbackmq/halfback/message"
)

// scanChunk is how much of the commit log Scan reads at a time.
const scanChunk = 1 << 20

// ErrStopScan, returned by a Scan callback, ends the scan early without
// an error.
var ErrStopScan = errors.New("store: stop scan")

// Scan calls fn for every record stored in [from, MaxPhysicalOffset()), in
// commit-log order, skipping end-of-segment blanks. A from below
// MinPhysicalOffset starts at the oldest record still stored; from must
// otherwise be a record boundary. It returns the offset after the last
// record it read. The Ext passed to fn is only valid during the call.
//
// Services that keep state derived from the log (transactions) replay it
// with Scan from their last checkpoint.
func (s *Store) Scan(from int64, fn func(e *message.Ext) error) (int64, error) {
	seg := s.opts.SegmentSize
	phys := max(from, s.log.minOffset())
	buf := make([]byte, scanChunk)
	for {
		limit := s.visibleLimit()
		if phys >= limit {
			return phys, nil
		}
		segEnd := (phys/seg + 1) * seg
		n := int(min(scanChunk, limit-phys, segEnd-phys))
		k := 0
		if n >= message.BlankHeaderSize {
			var err error
			if k, err = s.log.readSome(buf[:n], phys); err != nil && k == 0 && !errors.Is(err, ErrOffsetNotFound) {
				return phys, err
			}
		}
		if k < message.BlankHeaderSize {
			phys = segEnd // the segment's file ends here (no room for a record)
			continue
		}
		used, blank, err := scanBuffer(buf[:k], phys, fn)
		switch {
		case errors.Is(err, ErrStopScan):
			return phys + int64(used), nil
		case err != nil:
			return phys + int64(used), err
		case blank:
			phys = segEnd
		case used == 0:
			size, magic, _ := message.PeekHeader(buf[:k])
			if size == 0 && magic == 0 && segEnd < limit {
				phys = segEnd // zeros after the segment's last record
				continue
			}
			if size <= 0 {
				return phys, fmt.Errorf("%w: bad record size %d at %d", ErrCorrupt, size, phys)
			}
			// One record larger than a read: read it whole.
			rec, err := s.ReadRecords(phys, int(size))
			if err != nil {
				return phys, err
			}
			if _, _, err := scanBuffer(rec, phys, fn); err != nil {
				if errors.Is(err, ErrStopScan) {
					return phys, nil
				}
				return phys, err
			}
			phys += int64(size)
		default:
			phys += int64(used)
		}
	}
}

// scanBuffer calls fn for each whole record in buf (which starts at
// physical offset base). It returns the bytes consumed and whether it met
// an end-of-segment blank. The Ext passed to fn aliases buf.
func scanBuffer(buf []byte, base int64, fn func(e *message.Ext) error) (used int, blank bool, err error) {
	for len(buf)-used >= message.BlankHeaderSize {
		size, magic, err := message.PeekHeader(buf[used:])
		if err != nil {
			return used, false, err
		}
		if magic == message.BlankMagicCode {
			return used, true, nil
		}
		if size <= 0 || int(size) > len(buf)-used {
			return used, false, nil // continues in the next read
		}
		e, _, err := message.DecodeSealed(buf[used : used+int(size)])
		if err != nil || e.CommitLogOffset != base+int64(used) {
			return used, false, fmt.Errorf("%w: record at %d: %v", ErrCorrupt, base+int64(used), err)
		}
		if err := fn(&e); err != nil {
			return used, false, err
		}
		used += int(size)
	}
	return used, false, nil
}
