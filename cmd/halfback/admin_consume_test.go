package main

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
)

// consumeSelected consumes with --from first and the selector args until
// n messages have come, and returns their bodies, sorted.
func consumeSelected(t *testing.T, addr, group, topic string, n int, sel ...string) []string {
	t.Helper()
	var bodies []string
	waitFor(t, 10*time.Second, "the selected messages", func() bool {
		var got consumeResult
		runAdmin(t, addr, &got, append([]string{"consume", "--group", group, "--topic", topic, "--from", "first", "--max", "100"}, sel...)...)
		for _, m := range got.Messages {
			bodies = append(bodies, m.Body)
		}
		return len(bodies) >= n
	})
	slices.Sort(bodies)
	return bodies
}

// send --property sets user properties, and consume --sql and --tags
// select by them (the broker filters; the offsets pass what they skip).
func TestAdminConsumeSelectors(t *testing.T) {
	clearEnv(t)
	addr := startTestBrokerWith(t, func(o *broker.Options) { o.EnablePropertyFilter = true })
	var sent struct{ MsgID string }
	for i := range 8 {
		tag := []string{"paid", "created"}[i%2]
		runAdmin(t, addr, &sent, "send", "--topic", "orders", "--tag", tag,
			"--property", "amount="+strconv.Itoa(i*50), "--property", "region=eu", "o"+strconv.Itoa(i))
	}
	if got, want := consumeSelected(t, addr, "big", "orders", 2, "--sql", "amount > 100 AND TAGS = 'paid' AND region = 'eu'"), []string{"o4", "o6"}; !slices.Equal(got, want) {
		t.Fatalf("consume --sql got %v, want %v", got, want)
	}
	var again consumeResult
	runAdmin(t, addr, &again, "consume", "--group", "big", "--topic", "orders", "--from", "first", "--sql", "amount > 100")
	if len(again.Messages) != 0 {
		t.Fatalf("consume --sql again got %+v: the offsets committed did not pass the messages", again.Messages)
	}
	if got, want := consumeSelected(t, addr, "made", "orders", 4, "--tags", "created"), []string{"o1", "o3", "o5", "o7"}; !slices.Equal(got, want) {
		t.Fatalf("consume --tags got %v, want %v", got, want)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"consume", "--group", "g", "--topic", "orders", "--tags", "a", "--sql", "b = 1"}, "give one selector"},
		{[]string{"consume", "--group", "g", "--topic", "orders", "--sql", "amount >"}, "parse the consumer's subscription failed"},
		{[]string{"send", "--topic", "orders", "--property", "amount", "x"}, "want NAME=VALUE"},
		{[]string{"send", "--topic", "orders", "--property", "UNIQ_KEY=mine", "x"}, "UNIQ_KEY is a system property"},
		{[]string{"send", "--topic", "orders", "--property", "=v", "x"}, "blank name or value"},
		{[]string{"send", "--topic", "orders", "--property", "a=", "x"}, "blank name or value"},
	} {
		if err := runAdminErr(t, addr, c.args...); !strings.Contains(err.Error(), c.want) {
			t.Errorf("halfback %s: %v, want an error saying %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}
