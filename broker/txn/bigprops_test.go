package txn

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/halfbackmq/halfback/message"
)

// Every half message SendHalf accepts can be parked and moved: its copy in
// CheckMaxTopic carries two more properties (the half offset, the moved
// mark), and a half whose properties leave no room for them stayed pending
// with its checks used up, never parked, and held the store's retention
// below it for good (MoveBelow failed on every pass). Such a half is
// refused up front instead.
func TestEveryAcceptedHalfCanBeParkedAndMoved(t *testing.T) {
	r := newRig(t)
	var accepted, refused int
	for pad := message.MaxPropertiesLength - 160; pad < message.MaxPropertiesLength-40; pad++ {
		id := "big-" + strconv.Itoa(pad)
		p := message.Properties{message.PropertyUniqKey: id, message.PropertyProducerGroup: "pg",
			"PAD": strings.Repeat("x", pad)}
		m := &message.Message{Topic: "orders", QueueID: 1, Body: []byte(id), Properties: p.Encode()}
		res, err := r.svc.SendHalf(context.Background(), m, "")
		if err != nil {
			if !errors.Is(err, ErrBadHalf) {
				t.Fatalf("properties of %d bytes: %v, want ErrBadHalf", len(m.Properties), err)
			}
			refused++
			continue
		}
		accepted++
		if err := r.svc.MoveBelow(r.st.MaxPhysicalOffset()); err != nil {
			t.Fatalf("properties of %d bytes: accepted, but its message cannot be moved: %v", len(m.Properties), err)
		}
		r.useUpChecks()
		if x, ok := r.svc.Get("", res.PhysicalOffset); !ok || x.Status != Parked {
			t.Fatalf("properties of %d bytes: accepted, but after its checks it is %+v, not parked", len(m.Properties), x)
		}
		if _, err := r.end(res, Rollback); err != nil {
			t.Fatal(err)
		}
	}
	if accepted == 0 || refused == 0 {
		t.Fatalf("accepted %d, refused %d: the range should straddle the limit", accepted, refused)
	}
}
