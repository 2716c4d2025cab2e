package lifecycle

import (
	"fmt"
	"testing"
	"time"
)

// An order with more messages than the lookup's limit (payment.maxChecks
// may be up to 500): `halfback trace <order id>` gets the oldest limit of
// them, a contiguous start of the order's timeline with its create step,
// not the first in message id order (which dropped create and cancel,
// sorting after "check/...", and kept checks 1, 10, 100...).
func TestLookupLimitKeepsTheOldestMessages(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	r := open(t, clk)
	const order, tag = "o-1", "e0c1a2b3c4d5"
	var all []string
	rec := func(id string) {
		clk.add(time.Second)
		r.Record(Event{MsgID: id, Kind: Stored, Keys: order})
		all = append(all, id)
	}
	rec(order + "/" + tag + "/create")
	for i := 1; i <= 120; i++ {
		rec(fmt.Sprintf("%s/check/%d", order, i))
	}
	rec(order + "/" + tag + "/cancel")
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	msgs, err := r.Lookup(order, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, m.MsgID)
	}
	first, last := all[:100], all[len(all)-100:]
	if fmt.Sprint(got) != fmt.Sprint(first) && fmt.Sprint(got) != fmt.Sprint(last) {
		missing := []string{}
		in := map[string]bool{}
		for _, id := range got {
			in[id] = true
		}
		for _, id := range all {
			if !in[id] {
				missing = append(missing, id)
			}
		}
		t.Fatalf("Lookup(%q, 100) over %d messages: %d returned, missing %v\n(want the first or the last 100 in time)", order, len(all), len(got), missing)
	}
}
