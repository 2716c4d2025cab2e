package store

import (
	"math"
	"sync/atomic"
	"time"
)

// diskCheckPeriod is how often the disk's use is compared with
// Options.DiskFullRatio.
const diskCheckPeriod = time.Second

// diskState is the last disk check's outcome.
type diskState struct {
	full  atomic.Bool
	usage atomic.Uint64 // math.Float64bits of the used fraction
}

// DiskFull reports whether the disk holding the store was fuller than
// Options.DiskFullRatio at the last check (once a second), with the used
// fraction then. The store goes on appending; the broker refuses
// producers' sends while it reports true, as RocketMQ does above its
// diskSpaceWarningLevelRatio, so that what is stored can still be
// consumed, delivered and resolved while retention or an operator frees
// space. A failed check keeps the last answer.
func (s *Store) DiskFull() (full bool, usage float64) {
	return s.disk.full.Load(), math.Float64frombits(s.disk.usage.Load())
}

// diskLoop checks the disk every diskCheckPeriod until Close.
func (s *Store) diskLoop() {
	defer s.wg.Done()
	period := diskCheckPeriod
	if s.opts.diskCheckPeriod > 0 {
		period = s.opts.diskCheckPeriod
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.checkDisk()
		case <-s.stop:
			return
		}
	}
}

// checkDisk measures the disk's use and logs a change of DiskFull.
func (s *Store) checkDisk() {
	usage, err := s.diskUsage()
	if err != nil {
		s.opts.Logger.Warn("disk use unknown; keeping the last answer", "dir", s.opts.Dir, "err", err)
		return
	}
	s.disk.usage.Store(math.Float64bits(usage))
	full := usage > s.opts.DiskFullRatio
	if s.disk.full.Swap(full) == full {
		return
	}
	if full {
		s.opts.Logger.Error("disk full: producers' sends are refused until it is not", "dir", s.opts.Dir,
			"diskUsage", usage, "diskFullRatio", s.opts.DiskFullRatio)
	} else {
		s.opts.Logger.Info("disk no longer full: sends are taken again", "dir", s.opts.Dir,
			"diskUsage", usage, "diskFullRatio", s.opts.DiskFullRatio)
	}
}
