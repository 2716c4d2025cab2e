package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// Faults a real broker cannot be made to show, against the fake broker.

func uniqKeyOf(t testing.TB, req *remoting.Command) string {
	t.Helper()
	v, ok := message.Property(req.Ext("i"), message.PropertyUniqKey)
	if !ok {
		t.Fatalf("send without UNIQ_KEY: %q", req.Ext("i"))
	}
	return v
}

func TestSendRetriesRetryableCodes(t *testing.T) {
	for _, code := range []int16{remoting.RespSystemBusy, remoting.RespSystemError, remoting.RespServiceNotAvailable,
		remoting.RespTopicNotExist, remoting.RespNoPermission} {
		f := startFake(t)
		c := newClient(t, f.addr, nil)
		p := newProducer(t, c, ProducerOptions{})
		f.script(code)
		res, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: "t", Body: []byte("x")})
		if err != nil {
			t.Fatalf("code %d: Send = %v", code, err)
		}
		sends := f.sent()
		if len(sends) != 2 || uniqKeyOf(t, sends[0]) != res.MsgID || uniqKeyOf(t, sends[1]) != res.MsgID {
			t.Fatalf("code %d: %d sends; the retry must carry the same UNIQ_KEY", code, len(sends))
		}
	}
}

func TestSendGivesUp(t *testing.T) {
	f := startFake(t)
	c := newClient(t, f.addr, nil)
	p := newProducer(t, c, ProducerOptions{})
	ctx := ctxT(t, 10*time.Second)

	f.script(remoting.RespSystemBusy, remoting.RespSystemBusy, remoting.RespSystemBusy)
	_, err := p.Send(ctx, &Message{Topic: "t", Body: []byte("x")})
	var be *BrokerError
	if !errors.As(err, &be) || be.Code != remoting.RespSystemBusy || !IsRetryable(err) || len(f.sent()) != 3 {
		t.Fatalf("always busy: Send = %v after %d sends, want SYSTEM_BUSY after 3", err, len(f.sent()))
	}

	f.script(remoting.RespMessageIllegal)
	_, err = p.Send(ctx, &Message{Topic: "t", Body: []byte("x")})
	if !errors.As(err, &be) || be.Code != remoting.RespMessageIllegal || IsRetryable(err) || len(f.sent()) != 4 {
		t.Fatalf("MESSAGE_ILLEGAL: Send = %v, %d sends in all; want one more and a permanent error", err, len(f.sent()))
	}

	noRetry := newProducer(t, c, ProducerOptions{RetryTimes: -1})
	f.script(remoting.RespSystemBusy)
	if _, err = noRetry.Send(ctx, &Message{Topic: "t", Body: []byte("x")}); err == nil || len(f.sent()) != 5 {
		t.Fatalf("RetryTimes -1: Send = %v, %d sends in all", err, len(f.sent()))
	}
}

func TestSendNotDurable(t *testing.T) {
	f := startFake(t)
	c := newClient(t, f.addr, nil)
	p := newProducer(t, c, ProducerOptions{})
	f.script(remoting.RespFlushDiskTimeout)
	res, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: "t", Body: []byte("x")})
	if !errors.Is(err, ErrNotDurable) || res.MsgID == "" || res.OffsetMsgID == "" || len(f.sent()) != 1 {
		t.Fatalf("Send = %+v, %v after %d sends", res, err, len(f.sent()))
	}
}

// The caller's deadline ends a send even while the broker does not answer.
func TestSendHonoursContext(t *testing.T) {
	f := startFake(t)
	c := newClient(t, f.addr, nil)
	p := newProducer(t, c, ProducerOptions{})
	f.setHold(true)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Send(ctx, &Message{Topic: "t", Body: []byte("x")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, want a deadline error", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Send returned %v after its 300ms deadline", took)
	}
	if n := len(f.sent()); n != 1 {
		t.Fatalf("%d attempts within one deadline", n)
	}
}

// Without a caller deadline, RequestTimeout bounds each attempt, and an
// attempt that timed out is retried.
func TestSendRequestTimeout(t *testing.T) {
	f := startFake(t)
	c := newClient(t, f.addr, func(o *Options) { o.RequestTimeout = 100 * time.Millisecond })
	p := newProducer(t, c, ProducerOptions{})
	if _, err := c.publishQueues(ctxT(t, 5*time.Second), "t"); err != nil { // the route lookup is not what times out
		t.Fatal(err)
	}
	f.setHold(true)
	_, err := p.Send(context.Background(), &Message{Topic: "t", Body: []byte("x")})
	if !errors.Is(err, context.DeadlineExceeded) || !IsRetryable(err) {
		t.Fatalf("Send = %v, want a retryable timeout", err)
	}
	if n := len(f.sent()); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
}
