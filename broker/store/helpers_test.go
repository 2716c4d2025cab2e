package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, what, cond)
}

// testOptions returns small-file options in a fresh directory.
func testOptions(t testing.TB, flush FlushType) Options {
	return Options{
		Dir:                 t.TempDir(),
		FlushType:           flush,
		SegmentSize:         256 << 10,
		MaxMessageSize:      64 << 10,
		QueueEntriesPerFile: 64,
		FlushInterval:       5 * time.Millisecond,
		CheckpointInterval:  time.Hour, // tests checkpoint explicitly
		Logger:              testLogger(),
	}
}

func openStore(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// halt stops a store the way a crash would: no final flush, dispatch,
// checkpoint, or removal of the abort marker.
func (s *Store) halt() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	s.idx.abandon()
	s.cqs.close()
	s.log.close()
	s.lock.Close() // the kernel drops a dead process's lock
}

func testMsg(topic string, qid int32, i int) *message.Message {
	p := message.Properties{
		message.PropertyTags:    "tag" + strconv.Itoa(i%3),
		message.PropertyKeys:    fmt.Sprintf("order-%d k%d", i, i%5),
		message.PropertyUniqKey: fmt.Sprintf("UNIQ%08d", i),
		"traceparent":           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	return &message.Message{Topic: topic, QueueID: qid, Body: []byte(fmt.Sprintf("body-%d-%s", i, topic)),
		Properties: p.Encode(), BornTimestamp: 1700000000000 + int64(i)}
}

func mustAppend(t testing.TB, s *Store, m *message.Message) AppendResult {
	t.Helper()
	r, err := s.Append(context.Background(), m)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return r
}

// readAll pulls every visible record of a queue from its min offset.
// appendFrom appends each messages from each of writers goroutines at
// once, msg(w, i) being writer w's i-th, and fails the test on an error.
func appendFrom(t testing.TB, s *Store, writers, each int, msg func(w, i int) *message.Message) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := s.Append(context.Background(), msg(w, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func readAll(t testing.TB, s *Store, topic string, qid int32) []message.Ext {
	t.Helper()
	lo, _ := s.QueueBounds(topic, qid)
	var out []message.Ext
	for off := lo; ; {
		r, err := s.GetMessages(topic, qid, off, GetOptions{MaxMessages: 16})
		if err != nil {
			t.Fatalf("GetMessages: %v", err)
		}
		if r.Status != Found && r.Status != NoMatchedMessage && r.Status != MessageWasRemoving {
			return out
		}
		exts, err := message.DecodeAll(r.Records)
		if err != nil {
			t.Fatalf("DecodeAll: %v", err)
		}
		out = append(out, exts...)
		off = r.NextBeginOffset
	}
}

// fakeClock is a controllable clock. As a flushClock (Options.timeouts)
// its timers fire only when Add takes the time past their deadline.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at time.Time
	f  func()
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock on by d and runs the timers due by then, in the
// caller's goroutine.
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			keep = append(keep, t)
		} else {
			due = append(due, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	t := &fakeTimer{f: f}
	c.mu.Lock()
	t.at = c.now.Add(d)
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, p := range c.timers {
			if p == t {
				c.timers = append(c.timers[:i], c.timers[i+1:]...)
				return true
			}
		}
		return false
	}
}

// pending returns the deadlines of the timers not yet fired or stopped.
func (c *fakeClock) pending() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Time, len(c.timers))
	for i, t := range c.timers {
		out[i] = t.at
	}
	return out
}

func newBufLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func testLogger() *slog.Logger {
	if os.Getenv("STORE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// preparationFailure is the error of the last failed attempt to prepare
// the segment after the last, or nil.
func preparationFailure(s *Store) error {
	s.log.prepMu.Lock()
	p := s.log.next
	s.log.prepMu.Unlock()
	if p == nil {
		return nil
	}
	return p.failure()
}

// preparationEnded reports whether the preparation of the segment after
// the last has ended, and how.
func preparationEnded(s *Store) (bool, error) {
	s.log.prepMu.Lock()
	p := s.log.next
	s.log.prepMu.Unlock()
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}
