package broker

import (
	"strconv"
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// A oneway offset commit followed, on the same connection, by a query of
// that offset reads the committed offset: the official Go client's
// client-side reset commits the reset offsets oneway and at once reads
// them back to restart its queues (it restarted a queue from its old
// offset when the query ran first).
func TestOnewayCommitThenQueryOnOneConnection(t *testing.T) {
	b := startBroker(t, testOptions(t))
	appendTestMsgs(t, b, "ordered", 0, 10)
	c := dial(t, b)
	const rounds = 200
	stale := 0
	for i := range rounds {
		want := int64(i % 2 * 7) // back and forth, as a reset moves it
		ext := offsetExt("g", "ordered", 0)
		ext["commitOffset"] = strconv.FormatInt(want, 10)
		if err := c.InvokeOneway(remoting.NewRequest(remoting.ReqUpdateConsumerOffset, ext)); err != nil {
			t.Fatal(err)
		}
		if code, got := queryOffset(t, c, offsetExt("g", "ordered", 0)); code != remoting.RespSuccess || got != want {
			stale++
		}
	}
	if stale > 0 {
		t.Fatalf("%d of %d queries sent right after a oneway commit on the same connection did not read it", stale, rounds)
	}
}
