package client

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/message"
)

// An administration tool's CONSUME_MESSAGE_DIRECTLY (mqadmin queryMsgById
// -g -d, `halfback msg consume`), forwarded by the broker with a stored
// message, runs the group's handler of the message's topic on it and
// returns what the handler made of it, in RocketMQ's CMResult names:
// CR_SUCCESS, CR_LATER for ConsumeRetryLater, CR_THROW_EXCEPTION with the
// error or the panic. A message of the group's retry topic goes to the
// handler of its first topic. Nothing else happens: nothing is sent back
// to the retry topic. A message of a topic the group has no handler for,
// and a group the client does not have, are refused.
func TestConsumeMessageDirectly(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group, other := uniq("orders"), uniq("cg"), uniq("other")
	createTopic(t, p, other)
	c := newClient(t, cl.ns.Addr(), nil)

	var direct atomic.Bool // the verdict by body, for the direct calls only
	var mu sync.Mutex
	got := map[string][]string{} // body -> topics the handler saw it under
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		m := msgs[0]
		mu.Lock()
		got[string(m.Body)] = append(got[string(m.Body)], m.Topic)
		mu.Unlock()
		if !direct.Load() {
			return ConsumeSuccess, nil
		}
		switch string(m.Body) {
		case "later":
			return ConsumeRetryLater, nil
		case "fail":
			return ConsumeSuccess, errors.New("the order table is locked")
		case "panic":
			panic("nil order")
		}
		return ConsumeSuccess, nil
	}
	pc := startConsumer(t, c, ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst}, topic, "*", h)
	bodies := []string{"ok", "later", "fail", "panic"}
	for _, b := range bodies {
		if _, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	stored := cl.waitStored(t, topic, len(bodies))
	waitFor(t, "every message consumed", func() bool { return cl.caughtUp(topic, pc) })
	props := message.Properties{message.PropertyRetryTopic: topic, message.PropertyUniqKey: uniq("U")}.Encode()
	retried, err := cl.b.Store().Append(ctxT(t, 10*time.Second), &message.Message{Topic: retryTopic(group),
		ReconsumeTimes: 1, Body: []byte("retried"), Properties: props})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retried message consumed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["retried"]) == 1
	})

	direct.Store(true)
	ac, err := admin.Dial(ctxT(t, 10*time.Second), cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ac.Close() })
	want := map[string]struct{ result, remark string }{
		"ok": {"CR_SUCCESS", ""}, "later": {"CR_LATER", ""},
		"fail": {"CR_THROW_EXCEPTION", "the order table is locked"}, "panic": {"CR_THROW_EXCEPTION", "nil order"},
	}
	for _, m := range stored {
		res, err := ac.ConsumeMessageDirectly(ctxT(t, 20*time.Second), group, c.ClientID(), m.OffsetMsgID)
		w := want[string(m.Body)]
		if err != nil || res.ConsumeResult != w.result || !strings.Contains(res.Remark, w.remark) || res.Order || !res.AutoCommit {
			t.Fatalf("direct consume of %q: %+v, %v; want %s with remark %q", m.Body, res, err, w.result, w.remark)
		}
	}
	res, err := ac.ConsumeMessageDirectly(ctxT(t, 20*time.Second), group, c.ClientID(), retried.MsgID)
	if err != nil || res.ConsumeResult != "CR_SUCCESS" {
		t.Fatalf("direct consume of the retry topic's message: %+v, %v", res, err)
	}
	mu.Lock()
	for _, b := range append(bodies, "retried") {
		if len(got[b]) != 2 || got[b][1] != topic {
			t.Errorf("the handler saw %q under topics %v, want twice under %s", b, got[b], topic)
		}
	}
	mu.Unlock()
	if n := len(cl.stored(t, retryTopic(group))); n != 1 {
		t.Fatalf("%d messages in the retry topic, want the 1 stored there: a direct consume sent one back", n)
	}

	foreign := cl.waitStored(t, other, 1)[0]
	if _, err := ac.ConsumeMessageDirectly(ctxT(t, 20*time.Second), group, c.ClientID(), foreign.OffsetMsgID); err == nil ||
		!strings.Contains(err.Error(), "no handler for topic "+other) {
		t.Fatalf("direct consume of a topic the group does not subscribe: %v, want refused", err)
	}
	if _, err := ac.ConsumeMessageDirectly(ctxT(t, 20*time.Second), uniq("nogroup"), c.ClientID(), stored[0].OffsetMsgID); err == nil {
		t.Fatal("direct consume for a group the client does not have succeeded")
	}
}

// Close waits for a direct call's handler, as for the calls of pulled
// messages (a handler must not be running once Close has returned), and a
// consumer whose Close has begun refuses direct calls instead of running
// its handler.
func TestConsumeMessageDirectlyCloseWaits(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("orders"), uniq("cg")
	c := newClient(t, cl.ns.Addr(), nil)

	var direct atomic.Bool
	entered := make(chan struct{})
	var returned atomic.Bool
	var calls atomic.Int32 // direct handler calls
	var pc *PushConsumer
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		if !direct.Load() {
			return ConsumeSuccess, nil
		}
		if calls.Add(1) > 1 {
			return ConsumeSuccess, nil
		}
		close(entered)
		<-pc.Closing()
		// Still busy when Close begins: a bounded wait, so that a Close
		// that does not wait for it returns first.
		select {
		case <-time.After(time.Second):
		case <-t.Context().Done():
		}
		returned.Store(true)
		return ConsumeSuccess, nil
	}
	pc = startConsumer(t, c, ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst}, topic, "*", h)
	sendN(t, p, topic, "m", "", 1)
	stored := cl.waitStored(t, topic, 1)
	waitFor(t, "the message consumed", func() bool { return cl.caughtUp(topic, pc) })

	direct.Store(true)
	ac, err := admin.Dial(ctxT(t, 10*time.Second), cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ac.Close() })
	answered := make(chan error, 1)
	go func() {
		_, err := ac.ConsumeMessageDirectly(ctxT(t, 20*time.Second), group, c.ClientID(), stored[0].OffsetMsgID)
		answered <- err
	}()
	select {
	case <-entered:
	case err := <-answered:
		t.Fatalf("direct consume answered before its handler ran: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("the direct call's handler never ran")
	}
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	if !returned.Load() {
		t.Fatal("Close returned while a direct call's handler was still running")
	}
	if err := <-answered; err != nil {
		t.Fatalf("direct consume across Close: %v", err)
	}
	// What a direct call arriving between Close's start and the consumer's
	// leaving the client's table meets.
	if res, err := pc.consumeDirectly(&MessageExt{Message: Message{Topic: topic, Body: []byte("late")}}); !errors.Is(err, ErrClosed) || calls.Load() != 1 {
		t.Fatalf("direct consume on a closed consumer: %+v, %v, %d handler calls; want ErrClosed, the handler not called", res, err, calls.Load())
	}
}

// The retry of a re-driven dead letter (a message of the group's retry
// topic whose RETRY_TOPIC names a topic the group does not subscribe) goes
// to the handler of the group's dead-letter subscription when consumed
// directly, as when it is pulled (TestDLQRedriveRetryReachesItsHandler),
// not refused for want of a handler.
func TestConsumeMessageDirectlyDLQRedriveRetry(t *testing.T) {
	cl := startCluster(t, nil, nil)
	topic, group, redrive := deadLetterOne(t, cl)

	box := &inbox{}
	c := newClient(t, cl.ns.Addr(), nil)
	startConsumer(t, c, ConsumerOptions{Group: redrive, FromWhere: ConsumeFromFirst}, DLQTopic(group), "*", box.handler("r"))
	waitFor(t, "the dead letter handled", func() bool { return len(box.all()) == 1 })

	props := message.Properties{message.PropertyRetryTopic: topic, message.PropertyUniqKey: uniq("U")}.Encode()
	retried, err := cl.b.Store().Append(ctxT(t, 10*time.Second), &message.Message{Topic: retryTopic(redrive),
		ReconsumeTimes: 1, Body: []byte("retried"), Properties: props})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retry handled", func() bool { return len(box.all()) == 2 })

	ac, err := admin.Dial(ctxT(t, 10*time.Second), cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ac.Close() })
	res, err := ac.ConsumeMessageDirectly(ctxT(t, 20*time.Second), redrive, c.ClientID(), retried.MsgID)
	if err != nil || res.ConsumeResult != "CR_SUCCESS" {
		t.Fatalf("direct consume of a re-driven dead letter's retry: %+v, %v; want CR_SUCCESS", res, err)
	}
	calls := box.all()
	if len(calls) != 3 || calls[2].topic != DLQTopic(group) || calls[2].topic != calls[1].topic {
		t.Fatalf("handler calls %+v; want the direct one third, under %s as the pulled retry", calls, DLQTopic(group))
	}
}
