package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/message"
	"github.com/halfbackmq/halfback/namesrv"
)

// msg consume hands a stored message to an online consumer's handler
// through the broker and prints the result; it fails unless the handler
// consumed it, finds the message by its msgId with --topic, picks the
// group's only consumer when --client is left out and asks which one when
// there are two.
func TestAdminMsgConsume(t *testing.T) {
	clearEnv(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ns, err := namesrv.Open(namesrv.Options{ListenAddr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	addr := startTestBrokerWith(t, func(o *broker.Options) { o.NamesrvAddrs = []string{ns.Addr()} })
	var ok, bad admin.SendResult
	runAdmin(t, addr, &ok, "send", "--topic", "orders", "paid")
	runAdmin(t, addr, &bad, "send", "--topic", "orders", "unpaid")

	// The consumers consume both messages first; once direct is set, the
	// handler fails the unpaid one and reports what it was handed.
	var direct atomic.Bool
	got := make(chan string, 64)
	consumer := func() *client.Client {
		c, err := client.New(client.Options{NamesrvAddrs: []string{ns.Addr()}, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		pc, err := c.NewPushConsumer(client.ConsumerOptions{Group: "billing", FromWhere: client.ConsumeFromFirst})
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.Subscribe("orders", "*", func(_ context.Context, msgs []*client.MessageExt) (client.ConsumeResult, error) {
			select {
			case got <- string(msgs[0].Body):
			default:
			}
			if direct.Load() && string(msgs[0].Body) == "unpaid" {
				return client.ConsumeSuccess, errors.New("no payment for this order")
			}
			return client.ConsumeSuccess, nil
		}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		if err := pc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		return c
	}
	c1 := consumer()
	for seen := map[string]bool{}; len(seen) < 2; {
		seen[<-got] = true
	}
	direct.Store(true)

	var res admin.DirectResult
	runAdmin(t, addr, &res, "msg", "consume", ok.OffsetMsgID, "--group", "billing")
	if res.ConsumeResult != "CR_SUCCESS" || res.ClientID != c1.ClientID() {
		t.Fatalf("msg consume %s: %+v, want CR_SUCCESS from %s", ok.OffsetMsgID, res, c1.ClientID())
	}
	if body := <-got; body != "paid" {
		t.Fatalf("the handler got %q, want paid", body)
	}
	table, err := run(t, "msg", "consume", bad.MsgID, "--topic", "orders", "--group", "billing", "--broker", addr)
	if err == nil || !strings.Contains(err.Error(), "did not consume message "+bad.OffsetMsgID+": CR_THROW_EXCEPTION") ||
		!strings.Contains(table, "no payment for this order") {
		t.Fatalf("msg consume of a message the handler fails: %v\n%s", err, table)
	}
	if body := <-got; body != "unpaid" {
		t.Fatalf("the handler got %q, want unpaid", body)
	}
	// An offset message id of another broker's (its store host) at the
	// same offset names another message: this broker's, at that offset,
	// must not be handed to the handler in its place.
	_, phys, err := message.ParseOffsetMsgID(ok.OffsetMsgID)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := message.OffsetMsgID(netip.MustParseAddrPort("10.9.9.9:10911"), phys)
	if err := runAdminErr(t, addr, "msg", "consume", elsewhere, "--group", "billing"); !strings.Contains(err.Error(), "was stored by 10.9.9.9:10911") {
		t.Fatalf("msg consume of another broker's message id: %v, want refused", err)
	}
	select {
	case body := <-got:
		t.Fatalf("the handler was handed %q for another broker's message id", body)
	default:
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"msg", "consume", ok.OffsetMsgID, "--group", "nobody"}, "the consumer group[nobody] not online"},
		{[]string{"msg", "consume", ok.MsgID + "ZZ", "--group", "billing"}, "not an offset message id"},
		{[]string{"msg", "consume", "0A000001000027DB00000000DEADBEEF", "--group", "billing"}, "can not find message"},
	} {
		if err := runAdminErr(t, addr, tc.args...); !strings.Contains(err.Error(), tc.want) {
			t.Errorf("halfback %s: %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}

	c2 := consumer()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ac, err := admin.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	for {
		g, err := ac.GroupConnections(ctx, "billing")
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Clients) == 2 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the second consumer never joined: %+v", g)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := runAdminErr(t, addr, "msg", "consume", ok.OffsetMsgID, "--group", "billing"); !strings.Contains(err.Error(), "say which with --client") {
		t.Fatalf("msg consume with two consumers online and no --client: %v", err)
	}
	runAdmin(t, addr, &res, "msg", "consume", ok.OffsetMsgID, "--group", "billing", "--client", c2.ClientID())
	if res.ConsumeResult != "CR_SUCCESS" || res.ClientID != c2.ClientID() {
		t.Fatalf("msg consume --client %s: %+v", c2.ClientID(), res)
	}
}
