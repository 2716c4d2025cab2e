package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/internal/fsutil"
	"github.com/halfbackmq/halfback/message"
)

// A broker whose disk is fuller than store.diskFullRatio refuses
// producers' sends with SERVICE_NOT_AVAILABLE (clients try another
// broker), as RocketMQ does above its diskSpaceWarningLevelRatio, and
// records no lifecycle events; what it stored before is still pulled, and
// a delayed message stored before is still delivered (the store's own
// appends go on). The disk is the real one: the ratio is set below its use.
func TestDiskFullRefusesSends(t *testing.T) {
	o := testOptions(t)
	o.Delay.Levels, _ = delay.ParseLevels("3s")
	b := startBroker(t, o)
	c := dial(t, b)
	mustSend(t, c, "orders", 0, "", "before")
	mustSend(t, c, "orders", 0, props(message.PropertyDelayTimeLevel, "1"), "delayed")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	o.Store.DiskFullRatio = ratioBelowUse(t, o.Store.Dir)
	reopened := time.Now()
	b = startBroker(t, o)
	c = dial(t, b)
	for code, ext := range map[int16]map[string]string{remoting.ReqSendMessage: sendExt("orders", 0, ""), remoting.ReqSendMessageV2: sendExtV2("orders", 0, "")} {
		resp := call(t, c, code, ext, []byte("during"))
		if resp.Code != remoting.RespServiceNotAvailable || !strings.Contains(resp.Remark, "disk is full") {
			t.Fatalf("send %d on a full disk: code %d %q, want %d naming the full disk", code, resp.Code, resp.Remark, remoting.RespServiceNotAvailable)
		}
	}
	resp := call(t, c, remoting.ReqSendBatchMessage, sendExtV2("orders", 0, ""), batchBody([]string{"b1", "b2"}, []string{"", ""}))
	if resp.Code != remoting.RespServiceNotAvailable {
		t.Fatalf("batch on a full disk: code %d %q", resp.Code, resp.Remark)
	}

	// What was stored is still there, and the delayed message is delivered.
	msgs := waitQueueMsgs(t, b, "orders", 0, 2)
	if got := string(msgs[0].Body) + "," + string(msgs[1].Body); got != "before,delayed" {
		t.Fatalf("orders/0 holds %s, want before,delayed", got)
	}
	if resp := pull(t, c, "orders", 0, 0, 0, "*", 0); resp.Code != remoting.RespSuccess || len(decodeAll(t, resp.Body)) != 2 {
		t.Fatalf("pull on a full disk: code %d %q", resp.Code, resp.Remark)
	}
	if at := time.UnixMilli(msgs[1].StoreTimestamp); at.Before(reopened) {
		t.Fatalf("the delayed message was delivered at %v, before the broker reopened on a full disk (%v): the test proves nothing", at, reopened)
	}
	waitFor(t, "the delivery's lifecycle event dropped", func() bool { return b.life.Dropped() > 0 })
}

// A reply (SEND_REPLY_MESSAGE) on a full disk is still pushed to its
// requester, as RocketMQ pushes it before it tries to store it: the
// request was stored before the disk filled, and refusing the reply only
// makes the requester time out. It is not stored (RocketMQ's store
// refuses it): the answer is SUCCESS with message id "0", as for a
// reply delivered but not stored.
func TestDiskFullStillPushesReplies(t *testing.T) {
	o := testOptions(t)
	o.ClusterName = "payments"
	o.Store.DiskFullRatio = ratioBelowUse(t, o.Store.Dir)
	b := startBroker(t, o)
	if full, _ := b.store.DiskFull(); !full {
		t.Fatal("the disk is not reported full")
	}
	pushes := dialRequester(t, b, "requester-1", remoting.RespSuccess)
	c := dial(t, b)
	replyTopic := ReplyTopic("payments")
	p := props("MSG_TYPE", "reply", "CORRELATION_ID", "corr-7", "REPLY_TO_CLIENT", "requester-1", "TTL", "3")
	resp := call(t, c, remoting.ReqSendReplyMessage, replyHeader(replyTopic, p), []byte("pong"))
	if resp.Code != remoting.RespSuccess || resp.Ext("msgId") != "0" {
		t.Fatalf("reply on a full disk answered %d %q %v, want SUCCESS with msgId 0 (pushed, not stored)", resp.Code, resp.Remark, resp.ExtFields)
	}
	select {
	case push := <-pushes:
		if string(push.Body) != "pong" {
			t.Fatalf("pushed %q", push.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no PUSH_REPLY_MESSAGE_TO_CLIENT on a full disk")
	}
	if _, hi := b.store.QueueBounds(replyTopic, 0); hi != 0 {
		t.Fatalf("reply topic holds %d messages on a full disk, want none", hi)
	}
}

// ratioBelowUse returns half the use of the disk holding dir, counted as
// the store counts it (df's Use%): a DiskFullRatio that makes it full.
func ratioBelowUse(t *testing.T, dir string) float64 {
	t.Helper()
	sp, err := fsutil.Space(dir)
	if err != nil {
		t.Fatal(err)
	}
	used := float64(sp.Total - sp.Free)
	usage := used / (used + float64(sp.Avail))
	if usage < 0.001 {
		t.Fatalf("the test disk is %v used: cannot set a ratio below that", usage)
	}
	return usage / 2
}
