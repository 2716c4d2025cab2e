package admin

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

func TestDecodeConsumeStats(t *testing.T) {
	body := `{"consumeTps":0.0,"offsetTable":{{"brokerName":"b","queueId":1,"topic":"T"}:{"brokerOffset":7,"consumerOffset":5,"lastTimestamp":9,"pullOffset":5},` +
		` {"brokerName":"b","queueId":0,"topic":"T"} : {"brokerOffset":2,"consumerOffset":3}}}`
	got, err := decodeConsumeStats([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := []QueueProgress{
		{Topic: "T", Broker: "b", QueueID: 1, BrokerOffset: 7, ConsumerOffset: 5, Lag: 2, LastTimestamp: 9},
		{Topic: "T", Broker: "b", QueueID: 0, BrokerOffset: 2, ConsumerOffset: 3, Lag: 0},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got, err := decodeConsumeStats([]byte(`{"consumeTps":0.0,"offsetTable":{}}`)); err != nil || len(got) != 0 {
		t.Errorf("empty table: %v, %v", got, err)
	}
	for _, bad := range []string{`{"offsetTable":[]}`, `{"offsetTable":{{"topic":"T"} {}}}`, `{"offsetTable":{{"topic":"T"}:{}`} {
		if _, err := decodeConsumeStats([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// dialTestBroker opens an in-process broker and connects a client to it.
func dialTestBroker(t *testing.T) *Client {
	t.Helper()
	c, _ := dialTestBrokerOf(t)
	return c
}

// dialTestBrokerOf is dialTestBroker, also returning the broker; each
// tweak changes its options before it opens.
func dialTestBrokerOf(t *testing.T, tweaks ...func(*broker.Options)) (*Client, *broker.Broker) {
	t.Helper()
	levels, _ := delay.ParseLevels("100ms 200ms")
	o := broker.Options{
		Store:      store.Options{Dir: t.TempDir(), FlushType: store.SyncFlush, SegmentSize: 16 << 20},
		Delay:      delay.Options{Levels: levels},
		ListenAddr: "127.0.0.1:0",
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, tweak := range tweaks {
		tweak(&o)
	}
	b, err := broker.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	c, err := Dial(t.Context(), b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, b
}

// TestCompressedBodyShownAndResentInflated stores a dead letter whose
// producer compressed its body (FlagCompressed, as the Java and Go
// producers do over 4 KiB): ViewMessage shows the inflated body, and
// ResendDLQ sends the inflated body, uncompressed, to the original topic.
func TestCompressedBodyShownAndResentInflated(t *testing.T) {
	c, b := dialTestBrokerOf(t)
	ctx := context.Background()
	original := strings.Repeat("order-42 paid; ", 500)
	var zipped bytes.Buffer
	zw := zlib.NewWriter(&zipped)
	zw.Write([]byte(original))
	zw.Close()
	res, err := b.Store().Append(ctx, &message.Message{Topic: DLQTopicPrefix + "g", Body: zipped.Bytes(),
		SysFlag:    message.FlagCompressed,
		Properties: message.Properties{message.PropertyRetryTopic: "orders", message.PropertyUniqKey: "U1"}.Encode()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.ViewMessage(ctx, res.MsgID)
	if err != nil || m.Body != original {
		t.Fatalf("ViewMessage: body %.40q..., %v; want the inflated body", m.Body, err)
	}
	sent, err := c.ResendDLQ(ctx, "g", res.MsgID, false)
	if err != nil {
		t.Fatal(err)
	}
	copyMsg, err := c.ViewMessage(ctx, sent.OffsetMsgID)
	if err != nil || copyMsg.Topic != "orders" || copyMsg.Body != original || copyMsg.Ext().SysFlag&message.FlagCompressed != 0 {
		t.Fatalf("resent copy: topic %s, body %.40q..., sysFlag %d, %v", copyMsg.Topic, copyMsg.Body, copyMsg.Ext().SysFlag, err)
	}
}

func TestClientErrors(t *testing.T) {
	c := dialTestBroker(t)
	ctx := context.Background()
	if err := c.CreateTopic(ctx, "no spaces", 4); !errors.Is(err, ErrInvalid) || !errors.Is(err, message.ErrBadTopic) {
		t.Errorf("CreateTopic(bad name) = %v, want ErrInvalid and ErrBadTopic", err)
	}
	if err := c.CreateTopic(ctx, "ok", 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("CreateTopic(0 queues) = %v, want ErrInvalid", err)
	}
	if _, err := c.ViewMessage(ctx, "XYZ"); !errors.Is(err, message.ErrBadMessageID) {
		t.Errorf("ViewMessage(XYZ) = %v, want ErrBadMessageID", err)
	}
	var be *BrokerError
	if err := c.DeleteTopic(ctx, "missing"); !errors.As(err, &be) || be.Code != remoting.RespTopicNotExist {
		t.Errorf("DeleteTopic(missing) = %v, want a TOPIC_NOT_EXIST BrokerError", err)
	}
	if _, err := c.Send(ctx, SendRequest{Topic: "t", Keys: []string{"a b"}, Body: []byte("x")}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "a b") {
		t.Errorf("Send(key with a space) = %v, want ErrInvalid naming the key", err)
	}
	if _, err := c.Send(ctx, SendRequest{Topic: "t"}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "empty body") {
		t.Errorf("Send(empty body) = %v, want ErrInvalid", err)
	}
}

func TestUniqKeys(t *testing.T) {
	c := dialTestBroker(t)
	seen := map[string]bool{}
	for range 1000 {
		k := c.newUniqKey()
		if len(k) != 32 || seen[k] {
			t.Fatalf("uniq key %q: length %d, seen before %v", k, len(k), seen[k])
		}
		seen[k] = true
	}
}

func TestSendPullCommit(t *testing.T) {
	c := dialTestBroker(t)
	ctx := context.Background()
	if err := c.CreateTopic(ctx, "one", 1); err != nil {
		t.Fatal(err)
	}
	res, err := c.Send(ctx, SendRequest{Topic: "one", Tag: "x", Keys: []string{"k"}, Body: []byte{0xff, 0x00}})
	if err != nil {
		t.Fatal(err)
	}
	var r PullResult
	deadline := time.Now().Add(10 * time.Second)
	for len(r.Messages) == 0 && time.Now().Before(deadline) {
		if r, err = c.Pull(ctx, "", "one", 0, 0, 32); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.Messages) != 1 || r.Messages[0].MsgID != res.MsgID || r.Messages[0].BodyBase64 != "/wA=" || r.NextBeginOffset != 1 {
		t.Fatalf("pull: %+v", r)
	}
	if _, ok, err := c.QueryOffset(ctx, "g", "one", 0); ok || err != nil {
		t.Fatalf("QueryOffset before a commit: ok %v, err %v", ok, err)
	}
	if err := c.CommitOffset(ctx, "g", "one", 0, 1); err != nil {
		t.Fatal(err)
	}
	if off, ok, err := c.QueryOffset(ctx, "g", "one", 0); off != 1 || !ok || err != nil {
		t.Fatalf("QueryOffset = %d, %v, %v; want 1", off, ok, err)
	}
	progress, err := c.GroupOffsets(ctx, "g")
	if err != nil || len(progress) != 1 || progress[0].Lag != 0 || progress[0].ConsumerOffset != 1 {
		t.Fatalf("GroupOffsets = %+v, %v", progress, err)
	}
}

// TestGroupOffsetsLagLeavesOutRemovedMessages checks that a group whose
// committed offset lies before what retention kept lags by the messages
// kept after it, not by those removed too: its next pull starts at the
// oldest kept one.
func TestGroupOffsetsLagLeavesOutRemovedMessages(t *testing.T) {
	c, b := dialTestBrokerOf(t, func(o *broker.Options) {
		o.Store.SegmentSize, o.Store.MaxMessageSize = 256<<10, 32<<10
		o.Store.FileReserved, o.Store.RetentionCheckPeriod = time.Millisecond, 20*time.Millisecond
	})
	ctx := t.Context()
	if err := c.CreateTopic(ctx, "one", 1); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 8<<10)
	for range 100 { // 800 KiB: three full segments
		if _, err := b.Store().Append(ctx, &message.Message{Topic: "one", Body: big}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CommitOffset(ctx, "g", "one", 0, 1); err != nil {
		t.Fatal(err)
	}
	var st []QueueStatus
	testutil.WaitFor(t, 10*time.Second, "retention to remove topic one's first messages", func() bool {
		var err error
		if st, err = c.TopicStatus(ctx, "one"); err != nil {
			t.Fatal(err)
		}
		return st[0].MinOffset > 1
	})
	progress, err := c.GroupOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	// Retention may remove more between the two answers, never less.
	if len(progress) != 1 || progress[0].ConsumerOffset != 1 || progress[0].MinOffset < st[0].MinOffset ||
		progress[0].Lag != progress[0].BrokerOffset-progress[0].MinOffset || progress[0].BrokerOffset != 100 {
		t.Fatalf("GroupOffsets = %+v, want consumer offset 1, min offset at least %d, lag 100 - min offset", progress, st[0].MinOffset)
	}
}

// A dead letter resent once is not resent again by mistake (an operator
// retrying after a timeout): the second resend is refused with
// ErrAlreadyResent naming the copy, unless forced.
func TestResendDLQTwiceIsRefused(t *testing.T) {
	c, b := dialTestBrokerOf(t)
	ctx := context.Background()
	if err := c.CreateTopic(ctx, "orders", 1); err != nil {
		t.Fatal(err)
	}
	sent, err := c.Send(ctx, SendRequest{Topic: "orders", Body: []byte("order-42 paid")})
	if err != nil {
		t.Fatal(err)
	}
	// Dead-lettered for billing, as a send-back with no retries left does.
	dl, err := b.Store().Append(ctx, &message.Message{Topic: DLQTopicPrefix + "billing", Body: []byte("order-42 paid"),
		Properties: message.Properties{message.PropertyRetryTopic: "orders", message.PropertyUniqKey: sent.MsgID}.Encode()})
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.ResendDLQ(ctx, "billing", dl.MsgID, false)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the resent copy to be indexed", func() bool {
		copies, err := c.QueryByUniqKey(ctx, "orders", sent.MsgID)
		return err == nil && len(copies) == 2
	})
	if _, err := c.ResendDLQ(ctx, "billing", dl.MsgID, false); !errors.Is(err, ErrAlreadyResent) || !strings.Contains(err.Error(), first.OffsetMsgID) {
		t.Fatalf("second resend: %v, want ErrAlreadyResent naming %s", err, first.OffsetMsgID)
	}
	if _, err := c.ResendDLQ(ctx, "billing", dl.MsgID, true); err != nil {
		t.Fatalf("forced resend: %v", err)
	}
}

// QueryByKey lists newest first, as documented (and "halfback msg show
// --topic" shows the first), whatever order the broker answers in
// (RocketMQ's lists oldest first).
func TestQueryByKeyNewestFirst(t *testing.T) {
	c := dialTestBroker(t)
	ctx := context.Background()
	if err := c.CreateTopic(ctx, "orders", 1); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"0", "1", "2"} {
		if _, err := c.Send(ctx, SendRequest{Topic: "orders", Keys: []string{"order-9"}, Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	var msgs []Message
	testutil.WaitFor(t, 10*time.Second, "all three indexed", func() bool {
		var err error
		msgs, err = c.QueryByKey(ctx, "orders", "order-9")
		return err == nil && len(msgs) == 3
	})
	var got []string
	for _, m := range msgs {
		got = append(got, m.Body)
	}
	if s := strings.Join(got, ","); s != "2,1,0" {
		t.Fatalf("QueryByKey listed %s, want 2,1,0 (newest first)", s)
	}
}
