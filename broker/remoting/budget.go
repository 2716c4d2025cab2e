package remoting

import (
	"encoding/binary"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// budget is a Server's MaxInFlightBytes: the bytes of request frames its
// handlers hold. It is first come, first served: a connection waiting for
// a large frame's room is not overtaken by smaller ones.
type budget struct {
	sem    *semaphore.Weighted
	limit  int64
	log    *slog.Logger
	warned atomic.Int64 // unix nanoseconds of the last warning
}

func newBudget(limit int64, log *slog.Logger) *budget {
	return &budget{sem: semaphore.NewWeighted(limit), limit: limit, log: log}
}

// budgetWarnEvery spaces the warnings that reading waits for room.
const budgetWarnEvery = 10 * time.Second

// testHookBudgetWait, if set, is called when a connection starts to wait
// for room in the budget.
var testHookBudgetWait func()

// frameSize returns the size of the frame that c's reader is at, once its
// length prefix has arrived (0 without a budget, or for a frame Decode will
// refuse), or the read error of the prefix.
func (c *Conn) frameSize() (int64, error) {
	if c.cfg.budget == nil {
		return 0, nil
	}
	prefix, err := c.br.Peek(4)
	if err != nil {
		if len(prefix) == 0 {
			return 0, err
		}
		return 0, nil // a torn prefix: Decode reports it
	}
	n := int64(int32(binary.BigEndian.Uint32(prefix))) + 4
	if n < 4 || n > int64(c.cfg.maxFrameSize) {
		return 0, nil // Decode refuses it before reading it
	}
	return n, nil
}

// reserve takes n bytes of room for a request frame that c read (frameSize)
// before it goes to its handler. It waits while the server's handlers hold
// too much, and c reads nothing meanwhile; it fails when c closes. A
// response frame takes no room: it answers a call of the server's own,
// whose handler may hold the room the request waits for.
func (c *Conn) reserve(n int64) error {
	b := c.cfg.budget
	if b == nil || n == 0 || b.sem.TryAcquire(n) {
		return nil
	}
	if now := time.Now().UnixNano(); now-b.warned.Load() >= int64(budgetWarnEvery) {
		b.warned.Store(now)
		b.log.Warn("remoting: requests in flight hold MaxInFlightBytes; reading waits until calls return",
			"remote", c.RemoteAddr(), "frame", n, "limit", b.limit)
	}
	if h := testHookBudgetWait; h != nil {
		h()
	}
	if err := b.sem.Acquire(c.ctx, n); err != nil {
		return err
	}
	if c.cfg.idleTimeout > 0 { // the wait was not the peer's idleness
		_ = c.nc.SetReadDeadline(time.Now().Add(c.cfg.idleTimeout))
	}
	return nil
}

// unreserve gives n bytes back to the budget.
func (c *Conn) unreserve(n int64) {
	if n > 0 {
		c.cfg.budget.sem.Release(n)
	}
}
