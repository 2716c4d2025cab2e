package main

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/delay"
)

// engine is the store with the delay scheduler attached: the store's
// dispatch hook wakes the scheduler when scheduled messages arrive.
type engine struct {
	store *store.Store
	delay *delay.Scheduler
}

// openEngine opens the store and starts the scheduler as cfg says.
func openEngine(cfg *config.Config, log *slog.Logger) (*engine, error) {
	opts, err := cfg.StoreOptions()
	if err != nil {
		return nil, err
	}
	dopts, err := cfg.DelayOptions()
	if err != nil {
		return nil, err
	}
	opts.Logger, dopts.Logger = log, log
	if abs, err := filepath.Abs(opts.Dir); err == nil {
		opts.Dir = abs
		dopts.Dir = filepath.Join(abs, "delay")
	}
	var sched atomic.Pointer[delay.Scheduler]
	opts.OnDispatch = func(topic string, _ int32, _ int64) {
		if s := sched.Load(); s != nil {
			s.Notify(topic)
		}
	}
	st, err := store.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", opts.Dir, err)
	}
	s, err := delay.New(st, dopts)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("open delay scheduler in %s: %w", dopts.Dir, err)
	}
	sched.Store(s)
	s.Start()
	s.Notify(delay.ScheduleTopic) // deliver whatever fell due while stopped
	return &engine{store: st, delay: s}, nil
}

// close stops the scheduler (final checkpoint), then the store.
func (e *engine) close() error {
	derr := e.delay.Close()
	if err := e.store.Close(); err != nil {
		return err
	}
	return derr
}
