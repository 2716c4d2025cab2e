package delay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"

	"github.com/halfbackmq/halfback/internal/fsutil"
)

// progress is what the scheduler has delivered: per level the next
// ScheduleTopic queue offset to deliver, and the last delivered timer key.
type progress struct {
	levelNext []int64
	timer     timerKey
	// dropped are the cursors of levels past the configured ones (the
	// progress was written with more levels), read only to check them.
	dropped []int64
}

const progressMagic = 0x48424450 // "HBDP"

func (p progress) encode() []byte {
	b := binary.BigEndian.AppendUint32(nil, progressMagic)
	b = binary.BigEndian.AppendUint32(b, uint32(len(p.levelNext)))
	for _, n := range p.levelNext {
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = binary.BigEndian.AppendUint64(b, uint64(p.timer.due))
	b = binary.BigEndian.AppendUint64(b, uint64(p.timer.phys))
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

func readProgress(path string, levels int) (progress, error) {
	p := progress{levelNext: make([]int64, levels), timer: timerKey{due: 0, phys: -1}} // nothing delivered yet
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, err
	}
	if len(b) < 28 || binary.BigEndian.Uint32(b) != progressMagic ||
		crc32.ChecksumIEEE(b[:len(b)-4]) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return p, fmt.Errorf("delay: progress file %s is damaged", path)
	}
	n := int(binary.BigEndian.Uint32(b[4:]))
	if len(b) != 8+8*n+16+4 {
		return p, fmt.Errorf("delay: progress file %s has a bad length", path)
	}
	for i := 0; i < n; i++ {
		v := int64(binary.BigEndian.Uint64(b[8+8*i:]))
		if i < levels {
			p.levelNext[i] = v
		} else {
			p.dropped = append(p.dropped, v)
		}
	}
	off := 8 + 8*n
	p.timer = timerKey{int64(binary.BigEndian.Uint64(b[off:])), int64(binary.BigEndian.Uint64(b[off+8:]))}
	return p, nil
}

func writeProgress(path string, p progress) error { return fsutil.WriteFileAtomic(path, p.encode()) }
