package broker

import (
	"bufio"
	"net"
	"strconv"
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// staleQueries runs 200 rounds in which commitThenQuery commits want for
// group g on queue 0 of "ordered" and at once queries it on the same
// connection, reporting whether the query read want; it returns how many
// did not, and the rounds.
func staleQueries(commitThenQuery func(ext map[string]string, want int64) bool) (stale, rounds int) {
	rounds = 200
	for i := range rounds {
		want := int64(i % 2 * 7) // back and forth, as a reset moves it
		ext := offsetExt("g", "ordered", 0)
		ext["commitOffset"] = strconv.FormatInt(want, 10)
		if !commitThenQuery(ext, want) {
			stale++
		}
	}
	return stale, rounds
}

// A oneway offset commit followed, on the same connection, by a query of
// that offset reads the committed offset: the official Go client's
// client-side reset commits the reset offsets oneway and at once reads
// them back to restart its queues (it restarted a queue from its old
// offset when the query ran first).
func TestOnewayCommitThenQueryOnOneConnection(t *testing.T) {
	b := startBroker(t, testOptions(t))
	appendTestMsgs(t, b, "ordered", 0, 10)
	c := dial(t, b)
	stale, rounds := staleQueries(func(ext map[string]string, want int64) bool {
		if err := c.InvokeOneway(remoting.NewRequest(remoting.ReqUpdateConsumerOffset, ext)); err != nil {
			t.Fatal(err)
		}
		code, got := queryOffset(t, c, offsetExt("g", "ordered", 0))
		return code == remoting.RespSuccess && got == want
	})
	if stale > 0 {
		t.Fatalf("%d of %d queries sent right after a oneway commit on the same connection did not read it", stale, rounds)
	}
}

// The official Go client v2.1.2 sends its "oneway" commits without the
// oneway flag (its InvokeOneWay writes the request as it is and reads no
// answer): such a commit followed, on the same connection, by a query of
// that offset is read by the query too. The client's flag-less commit is
// written here on a raw connection, its answer skipped.
func TestFlaglessCommitThenQueryOnOneConnection(t *testing.T) {
	b := startBroker(t, testOptions(t))
	appendTestMsgs(t, b, "ordered", 0, 10)
	nc, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	stale, rounds := staleQueries(func(ext map[string]string, want int64) bool {
		query := remoting.NewRequest(remoting.ReqQueryConsumerOffset, offsetExt("g", "ordered", 0))
		writeFrames(t, nc, remoting.NewRequest(remoting.ReqUpdateConsumerOffset, ext), query)
		for {
			resp, err := remoting.Decode(br, 0)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Opaque == query.Opaque { // else the commit's answer, which the client drops
				return resp.Code == remoting.RespSuccess && resp.Ext("offset") == strconv.FormatInt(want, 10)
			}
		}
	})
	if stale > 0 {
		t.Fatalf("%d of %d queries sent right after a flag-less commit on the same connection did not read it", stale, rounds)
	}
}
