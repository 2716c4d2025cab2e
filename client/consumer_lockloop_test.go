package client

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Start racing two Closes, and a Start whose ctx ends, never leave the
// lock loop running (lockDone closed once Close returned) nor race.
func TestLockLoopStartClose(t *testing.T) {
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	topic := uniq("t")
	for i := range 6 {
		pc, err := c.NewPushConsumer(ConsumerOptions{Group: uniq("g"), Orderly: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.Subscribe(topic, "*", func(context.Context, []*MessageExt) (ConsumeResult, error) { return ConsumeSuccess, nil }); err != nil {
			t.Fatal(err)
		}
		ctx := ctxT(t, 20*time.Second)
		if i%2 == 1 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(i)*time.Millisecond)
			defer cancel()
		}
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { defer wg.Done(); _ = pc.Start(ctx) }()
		go func() { defer wg.Done(); _ = pc.Close() }()
		go func() { defer wg.Done(); _ = pc.Close() }()
		wg.Wait()
		_ = pc.Close()
		pc.mu.Lock()
		done := pc.lockDone
		pc.mu.Unlock()
		if done != nil {
			select {
			case <-done:
			default:
				t.Fatalf("round %d: lock loop still running after Close", i)
			}
		}
	}
}
