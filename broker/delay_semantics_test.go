package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

// A producer's DELAY=1 message
// with properties close to the record limit is accepted (SEND_OK), but its
// delivered copy (DELAY removed, TIMER_OUT_MS added) is over the limit; no
// delayed message of any other producer is delivered after it.
func TestBigDelayedMessageJamsAllDelivery(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	sent := false
	for n := message.MaxPropertiesLength; n > message.MaxPropertiesLength-200; n-- {
		resp := call(t, c, remoting.ReqSendMessage, sendExt("jam", 0, props("DELAY", "1", "pad", strings.Repeat("x", n))), []byte("big"))
		if resp.Code == remoting.RespSuccess {
			sent = true
			break
		}
	}
	if !sent {
		t.Fatal("no padded message was accepted")
	}
	mustSend(t, c, "victim", 0, props("DELAY", "1", "UNIQ_KEY", "V1"), "victim")
	testutil.WaitFor(t, 5*time.Second, "another producer's 100 ms delayed message to be delivered", func() bool {
		_, hi := b.Store().QueueBounds("victim", 0)
		return hi >= 1
	})
}

// Halfback.delay.scheduled counts
// "messages accepted for delayed delivery", but a delayed send the store
// refuses (properties too long once REAL_TOPIC/REAL_QID are added) is
// counted too.
func TestScheduledCountsRefusedSends(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	resp := call(t, c, remoting.ReqSendMessage, sendExt("jam", 0, props("DELAY", "1", "pad", strings.Repeat("x", message.MaxPropertiesLength-20))), []byte("big"))
	if resp.Code == remoting.RespSuccess {
		t.Fatal("the oversized message was accepted")
	}
	if got := b.Scheduler().Stats().Scheduled[1]; got != 0 {
		t.Fatalf("send refused (code %d %q) yet Scheduled[1] = %d", resp.Code, resp.Remark, got)
	}
}
