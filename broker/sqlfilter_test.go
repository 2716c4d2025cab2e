package broker

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/halfbackmq/halfback/broker/lifecycle"
	"github.com/halfbackmq/halfback/broker/remoting"
)

// sqlHeartbeat is a consumer heartbeat of group subscribing to topic
// with a SQL92 expression, as the official clients send it.
func sqlHeartbeat(clientID, group, topic, expr string, version int64) []byte {
	return fmt.Appendf(nil, `{"clientID":%q,"producerDataSet":[],"consumerDataSet":[{"groupName":%q,`+
		`"consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET",`+
		`"unitMode":false,"subscriptionDataSet":[{"classFilterMode":false,"topic":%q,"subString":%q,"tagsSet":[],`+
		`"codeSet":[],"subVersion":%d,"expressionType":"SQL92"}]}]}`, clientID, group, topic, expr, version)
}

// sqlPull pulls queue 0 of topic from offset 0 for group "cg" with a SQL92
// expression in the request (the subscription flag), or, for expr "",
// with the subscription the group's heartbeat registered.
func sqlPull(t *testing.T, c *remoting.Conn, topic, expr string) *remoting.Command {
	t.Helper()
	ext := pullExt(topic, 0, 0, 0, expr, 0)
	ext["expressionType"] = "SQL92"
	return call(t, c, remoting.ReqPullMessage, ext, nil)
}

func pulledBodies(t *testing.T, resp *remoting.Command) string {
	t.Helper()
	s := ""
	for _, m := range decodeAll(t, resp.Body) {
		s += string(m.Body)
	}
	return s
}

// A SQL92 subscription (RocketMQ's MessageSelector.bySql) gets only the
// messages its expression is TRUE for, evaluated on their properties
// (user properties, TAGS, KEYS); a message without the property is not
// matched (NULL), and a pull that matches nothing moves the offset on.
func TestPullSQL92Filter(t *testing.T) {
	o := testOptions(t)
	o.EnablePropertyFilter = true
	b := startBroker(t, o)
	c := dial(t, b)
	for i := range 6 {
		p := props("a", strconv.Itoa(i), "TAGS", []string{"x", "y"}[i%2], "KEYS", "order-"+strconv.Itoa(i))
		if i == 5 {
			p = props("TAGS", "y") // no a
		}
		mustSend(t, c, "props", 0, p, strconv.Itoa(i))
	}
	waitQueue(t, b, "props", 0, 6)
	for _, tc := range []struct{ expr, want string }{
		{"a > 2", "34"},
		{"a BETWEEN 1 AND 3 AND TAGS = 'y'", "13"},
		{"TAGS IN ('x') OR a IS NULL", "0245"},
		{"NOT (a < 4)", "4"},
		{"KEYS = 'order-2'", "2"},
		{"a IS NOT NULL", "01234"},
	} {
		resp := sqlPull(t, c, "props", tc.expr)
		if resp.Code != remoting.RespSuccess || pulledBodies(t, resp) != tc.want || resp.Ext("nextBeginOffset") != "6" {
			t.Errorf("%q: code %d %q, got %q next %s, want %q", tc.expr, resp.Code, resp.Remark, pulledBodies(t, resp), resp.Ext("nextBeginOffset"), tc.want)
		}
	}
	resp := sqlPull(t, c, "props", "a > 100")
	if resp.Code != remoting.RespPullRetryImmediately || resp.Ext("nextBeginOffset") != "6" || len(resp.Body) != 0 {
		t.Fatalf("no match: code %d %q ext %v", resp.Code, resp.Remark, resp.ExtFields)
	}
	for _, bad := range []string{"a >", "a = 'unterminated", "(a = 1", "a BETWEEN 1"} {
		if resp := sqlPull(t, c, "props", bad); resp.Code != remoting.RespSubscriptionParseFailed {
			t.Errorf("%q: code %d %q, want SUBSCRIPTION_PARSE_FAILED", bad, resp.Code, resp.Remark)
		}
	}
	// Without the subscription flag the group's heartbeat decides.
	hbOK(t, c, sqlHeartbeat("C1", "cg", "props", "a >= 3", 1))
	if resp := sqlPull(t, c, "props", ""); resp.Code != remoting.RespSuccess || pulledBodies(t, resp) != "34" {
		t.Fatalf("heartbeat's subscription: code %d %q, got %q, want \"34\"", resp.Code, resp.Remark, pulledBodies(t, resp))
	}
	// Another expression type is refused, as RocketMQ's FilterFactory has none.
	ext := pullExt("props", 0, 0, 0, "a > 1", 0)
	ext["expressionType"] = "GROOVY"
	if resp := call(t, c, remoting.ReqPullMessage, ext, nil); resp.Code != remoting.RespSystemError {
		t.Fatalf("GROOVY: code %d %q, want SYSTEM_ERROR", resp.Code, resp.Remark)
	}
}

// CHECK_CLIENT_CONFIG, which a Java push consumer sends on start for a
// SQL92 subscription, is answered as RocketMQ's ClientManageProcessor:
// success for a tag subscription (or none), SYSTEM_ERROR while property
// filtering is off, SUBSCRIPTION_PARSE_FAILED for an expression that does
// not compile.
func TestCheckClientConfig(t *testing.T) {
	body := func(typ, expr string) []byte {
		return fmt.Appendf(nil, `{"clientId":"C1","group":"cg","subscriptionData":{"topic":"t","subString":%q,"expressionType":%q,"subVersion":1}}`, expr, typ)
	}
	for _, enabled := range []bool{false, true} {
		o := testOptions(t)
		o.EnablePropertyFilter = enabled
		c := dial(t, startBroker(t, o))
		sqlWant := remoting.RespSystemError
		if enabled {
			sqlWant = remoting.RespSuccess
		}
		parseWant := remoting.RespSystemError
		if enabled {
			parseWant = remoting.RespSubscriptionParseFailed
		}
		for _, tc := range []struct {
			name string
			body []byte
			want int16
		}{
			{"no body", nil, remoting.RespSuccess},
			{"no subscription", []byte(`{"clientId":"C1","group":"cg"}`), remoting.RespSuccess},
			{"tag", body("TAG", "a || b"), remoting.RespSuccess},
			{"empty type", body("", "*"), remoting.RespSuccess},
			{"sql92", body("SQL92", "a > 1 AND b = 'x'"), sqlWant},
			{"sql92 syntax error", body("SQL92", "a >"), parseWant},
			{"unknown type", body("GROOVY", "a"), remoting.RespSystemError},
			{"malformed body", []byte(`{"subscriptionData":`), remoting.RespSystemError},
		} {
			resp := call(t, c, remoting.ReqCheckClientConfig, map[string]string{"clientId": "C1", "group": "cg"}, tc.body)
			if resp.Code != tc.want {
				t.Errorf("enablePropertyFilter %v, %s: code %d %q, want %d", enabled, tc.name, resp.Code, resp.Remark, tc.want)
			}
		}
	}
}

// A group whose SQL92 subscription skips a message never got it, although
// its committed offset passed it: `halfback trace` says filtered.
func TestTraceFilteredByTheGroupsSQL92(t *testing.T) {
	o := testOptions(t)
	o.EnablePropertyFilter = true
	b := startBroker(t, o)
	c := dial(t, b)
	haveTopic(t, b, "orders", 0)
	hbOK(t, c, sqlHeartbeat("C1", "big-orders", "orders", "amount > 100", 1))
	mustSend(t, c, "orders", 0, props("UNIQ_KEY", "big", "amount", "250"), "wanted")
	mustSend(t, c, "orders", 0, props("UNIQ_KEY", "small", "amount", "20"), "skipped")
	waitQueue(t, b, "orders", 0, 2)
	if r := syncCommit(t, c, "big-orders", "orders", 0, 2); r.Code != remoting.RespSuccess {
		t.Fatalf("commit: %d %s", r.Code, r.Remark)
	}
	if got := kinds(traceOne(t, b, "big")); !slices.Contains(got, lifecycle.Consumed) || slices.Contains(got, lifecycle.Filtered) {
		t.Fatalf("amount 250: %v, want consumed", got)
	}
	if got := kinds(traceOne(t, b, "small")); slices.Contains(got, lifecycle.Consumed) || !slices.Contains(got, lifecycle.Filtered) {
		t.Fatalf("amount 20, which the group's expression skips: %v, want filtered and not consumed", got)
	}
}

// The compiled-expression cache is bounded by the expressions' size, not
// only their count: a compiled 64 KiB expression takes about 1.3 MB, so
// 1024 of them (pulls naming distinct expressions, which any client may
// send) would keep over a gigabyte.
func TestFilterCacheBoundedBySize(t *testing.T) {
	var c filterCache
	long := strings.Repeat("a = 1 OR ", 6000) + "a = 1" // ~54 KiB
	for i := range 40 {
		e, err := c.compile(long + strings.Repeat(" ", i))
		if err != nil || !e.Match(func(string) (string, bool) { return "1", true }) {
			t.Fatalf("compile %d: %v", i, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := 0
	for expr := range c.m {
		kept += len(expr)
	}
	if kept > maxCompiledFilterBytes {
		t.Fatalf("the cache keeps %d expressions of %d bytes in all, want at most %d bytes", len(c.m), kept, maxCompiledFilterBytes)
	}
}
