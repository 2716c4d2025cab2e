package client

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

// removedRecordCluster starts a cluster whose broker removes every full
// commit-log segment at once (small segments, kept 1 ms, checked every
// 20 ms), and returns it with removeSegmentOf, which fills the log until
// retention has removed the segment of the record at phys.
// mod, if not nil, adjusts the broker's options further.
func removedRecordCluster(t *testing.T, mod func(*broker.Options)) (*cluster, func(ctx context.Context, phys int64)) {
	cl := startCluster(t, nil, func(o *broker.Options) {
		o.Store.SegmentSize, o.Store.MaxMessageSize = 256<<10, 32<<10
		o.Store.FileReserved, o.Store.RetentionCheckPeriod = time.Millisecond, 20*time.Millisecond
		if mod != nil {
			mod(o)
		}
	})
	return cl, func(ctx context.Context, phys int64) {
		st := cl.b.Store()
		big := strings.Repeat("f", 8<<10)
		for i := range 100 {
			if _, err := st.Append(ctx, &message.Message{Topic: "filler", Body: []byte(big),
				Properties: message.Properties{message.PropertyUniqKey: "F" + strconv.Itoa(i)}.Encode()}); err != nil {
				t.Error(err)
			}
		}
		waitFor(t, "retention to remove the message's segment", func() bool { return st.MinPhysicalOffset() > phys })
	}
}

// retryRemovingFirst is a handler that asks for every message again and,
// on its first call, has retention remove that message's segment
// (removeSegmentOf, from removedRecordCluster); removed reports that it has.
func retryRemovingFirst(removeSegmentOf func(context.Context, int64)) (h MessageHandler, removed *atomic.Bool) {
	removed = new(atomic.Bool)
	return func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		if !removed.Load() {
			removeSegmentOf(ctx, msgs[0].CommitLogOffset)
			removed.Store(true)
		}
		return ConsumeRetryLater, nil
	}, removed
}

// TestSendBackOfRemovedRecordStoresTheRetryByContent: a failed message
// whose commit-log segment retention removed before the send-back cannot be
// looked up by offset (the broker refuses CONSUMER_SEND_MSG_BACK). As
// RocketMQ's consumer, the client then stores the retry itself, an
// ordinary send to %RETRY%<group> with RETRY_TOPIC and one more reconsume,
// rather than consuming the message again on the spot for ever with the
// queue's offset pinned behind it.
func TestSendBackOfRemovedRecordStoresTheRetryByContent(t *testing.T) {
	cl, removeSegmentOf := removedRecordCluster(t, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("pay"), uniq("cg")
	res, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("poison"), Tags: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	var removed atomic.Bool
	var retried atomic.Pointer[MessageExt]
	h := func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		m := msgs[0]
		if m.SystemProperties[message.PropertyRetryTopic] != "" {
			retried.Store(m)
			return ConsumeSuccess, nil
		}
		if !removed.Load() {
			removeSegmentOf(ctx, m.CommitLogOffset)
			removed.Store(true)
		}
		return ConsumeRetryLater, nil
	}
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst,
		PersistInterval: 100 * time.Millisecond}, topic, "*", h)
	waitFor(t, "the message's segment removed", removed.Load)
	retry := cl.waitStored(t, retryTopic(group), 1)[0]
	if string(retry.Body) != "poison" || retry.MsgID != res.MsgID || retry.Tags != "t1" || retry.ReconsumeTimes != 1 ||
		retry.SystemProperties[message.PropertyRetryTopic] != topic {
		t.Fatalf("retry copy %+v", retry)
	}
	// As RocketMQ's client-side copy: the origin is the message's id, its
	// producer's unique key, not the removed record's offset id.
	if got := retry.SystemProperties[message.PropertyOriginMessageID]; got != res.MsgID {
		t.Fatalf("retry copy's ORIGIN_MESSAGE_ID %q, want the unique key %q (offset id %q)", got, res.MsgID, res.OffsetMsgID)
	}
	waitFor(t, "the retry consumed", func() bool { return retried.Load() != nil })
	if m := retried.Load(); m.Topic != topic || m.ReconsumeTimes != 1 {
		t.Fatalf("retry delivered as topic %s, reconsumeTimes %d", m.Topic, m.ReconsumeTimes)
	}
	waitFor(t, "the topic and the retry topic acknowledged", func() bool {
		return cl.caughtUp(topic, pc) && cl.caughtUp(retryTopic(group), pc)
	})
}

// TestOrderlyDeadLetterOfRemovedRecordStoresItByContent: the same for an
// orderly consumer's dead letter (send-back with delay level -1): the
// client's own send lands in %DLQ%<group>, and the queue moves on.
func TestOrderlyDeadLetterOfRemovedRecordStoresItByContent(t *testing.T) {
	cl, removeSegmentOf := removedRecordCluster(t, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("ledger"), uniq("og")
	sendKeyed(t, p, topic, []string{"k0"}, 0, 1)
	h, removed := retryRemovingFirst(removeSegmentOf)
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, Orderly: true,
		FromWhere: ConsumeFromFirst, MaxReconsumeTimes: 1, SuspendInterval: 20 * time.Millisecond}, topic, "*", h)
	waitFor(t, "the message's segment removed", removed.Load)
	dlq := cl.waitStored(t, DLQTopic(group), 1)[0]
	if string(dlq.Body) != "k0-0" || dlq.SystemProperties[message.PropertyRetryTopic] != topic {
		t.Fatalf("dead letter %+v", dlq)
	}
	waitFor(t, "the queue acknowledged", func() bool { return cl.caughtUp(topic, pc) })
	if got := cl.stored(t, retryTopic(group)); len(got) != 0 {
		t.Fatalf("%d messages in the retry topic, want 0", len(got))
	}
}

// TestSendBackByContentAfterLocalRetryCountsThem: a failed message whose
// first send-back got no answer (held here until the client gave up) is
// consumed again on the spot, its ReconsumeTimes one higher; when its next
// send-back is refused (its record was removed meanwhile), the copy the
// client stores counts that local retry too, as RocketMQ's consumer does
// (it raises the message's reconsumeTimes on each failed send-back, and
// its copy takes delay level 3 + reconsumeTimes and one more reconsume):
// delay level 4 and ReconsumeTimes 2, not 3 and 1, which would retry it
// sooner and reach the dead-letter queue one failure later.
func TestSendBackByContentAfterLocalRetryCountsThem(t *testing.T) {
	topic, group := uniq("pay"), uniq("cg")
	var backs atomic.Int32
	var copyReq atomic.Pointer[remoting.Command]
	listen := testutil.FreeAddr(t)
	px := startHoldProxy(t, listen, func(req *remoting.Command) bool {
		switch {
		case req.Code == remoting.ReqConsumerSendMsgBack:
			return backs.Add(1) == 1 // the first one: no answer
		case req.Code == remoting.ReqSendMessageV2 && req.ExtFields["b"] == retryTopic(group):
			copyReq.Store(req)
		}
		return false
	})
	cl, removeSegmentOf := removedRecordCluster(t, func(o *broker.Options) { o.ListenAddr, o.AdvertiseAddr = listen, px.addr })
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	if _, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("poison")}); err != nil {
		t.Fatal(err)
	}
	var seen sync.Map // ReconsumeTimes of the first delivery's calls
	var retried atomic.Pointer[MessageExt]
	h := func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		m := msgs[0]
		if m.SystemProperties[message.PropertyRetryTopic] != "" {
			retried.Store(m)
			return ConsumeSuccess, nil
		}
		if _, again := seen.LoadOrStore(m.ReconsumeTimes, true); !again && m.ReconsumeTimes == 0 {
			removeSegmentOf(ctx, m.CommitLogOffset)
		}
		return ConsumeRetryLater, nil
	}
	c := newClient(t, cl.ns.Addr(), func(o *Options) { o.RequestTimeout = 300 * time.Millisecond })
	startConsumer(t, c, ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst,
		SuspendInterval: 20 * time.Millisecond}, topic, "*", h)
	waitFor(t, "the retry consumed", func() bool { return retried.Load() != nil })
	if _, ok := seen.Load(int32(1)); !ok || backs.Load() != 2 {
		t.Fatalf("no local retry before the second send-back (send-backs %d)", backs.Load())
	}
	req := copyReq.Load()
	level, _ := message.Property(req.ExtFields["i"], message.PropertyDelayTimeLevel)
	if level != "4" || req.ExtFields["j"] != "2" {
		t.Fatalf("retry copy sent with delay level %q and reconsumeTimes %q, want 4 and 2 (stored 0, one local retry)",
			level, req.ExtFields["j"])
	}
	if m := retried.Load(); m.ReconsumeTimes != 2 {
		t.Fatalf("retry delivered with reconsumeTimes %d, want 2", m.ReconsumeTimes)
	}
}

// TestSendBackByContentKeepsTheCompressionType: a body flagged compressed
// that does not inflate is delivered, and sent back, as stored. The
// client-side retry copy kept only FlagCompressed, so an LZ4 (or zstd)
// body came back typed zlib (type 0): read by the wrong codec.
func TestSendBackByContentKeepsTheCompressionType(t *testing.T) {
	cl, removeSegmentOf := removedRecordCluster(t, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("lz"), uniq("cg")
	const lz4 = message.FlagCompressed | 1<<8 // MessageSysFlag.COMPRESSION_LZ4_TYPE
	o := &outgoing{op: "SEND_MESSAGE_V2", code: remoting.ReqSendMessageV2, topic: topic, first: &Message{Topic: topic},
		sysFlag: lz4, body: []byte("not lz4 at all")}
	if _, _, err := p.deliver(ctxT(t, 10*time.Second), o); err != nil {
		t.Fatal(err)
	}
	h, removed := retryRemovingFirst(removeSegmentOf)
	startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst}, topic, "*", h)
	waitFor(t, "the message's segment removed", removed.Load)
	retry := cl.waitStored(t, retryTopic(group), 1)[0]
	if string(retry.Body) != "not lz4 at all" || retry.SysFlag&(message.FlagCompressed|7<<8) != lz4 {
		t.Fatalf("retry copy body %q sysFlag %#x, want the body as stored, compressed LZ4 (%#x)", retry.Body, retry.SysFlag, lz4)
	}
}
