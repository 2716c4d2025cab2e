package broker

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// subGroups asks GET_ALL_SUBSCRIPTIONGROUP_CONFIG.
func subGroups(t *testing.T, c *remoting.Conn) subGroupFile {
	t.Helper()
	resp := call(t, c, remoting.ReqGetAllSubscriptionGroupConfig, nil, nil)
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("GET_ALL_SUBSCRIPTIONGROUP_CONFIG: %d %s", resp.Code, resp.Remark)
	}
	var f subGroupFile
	if err := json.Unmarshal(resp.Body, &f); err != nil {
		t.Fatalf("GET_ALL_SUBSCRIPTIONGROUP_CONFIG body %s: %v", resp.Body, err)
	}
	return f
}

// updateSubGroup sends UPDATE_AND_CREATE_SUBSCRIPTIONGROUP with body.
func updateSubGroup(t *testing.T, c *remoting.Conn, body string) *remoting.Command {
	t.Helper()
	return call(t, c, remoting.ReqUpdateAndCreateSubscriptionGroup, nil, []byte(body))
}

func mustUpdateSubGroup(t *testing.T, c *remoting.Conn, body string) {
	t.Helper()
	if resp := updateSubGroup(t, c, body); resp.Code != remoting.RespSuccess {
		t.Fatalf("update %s: %d %s", body, resp.Code, resp.Remark)
	}
}

// pullAs pulls queue 0 of topic as group.
func pullAs(t *testing.T, c *remoting.Conn, group, topic string) *remoting.Command {
	t.Helper()
	ext := pullExt(topic, 0, 0, 0, "*", 0)
	ext["consumerGroup"] = group
	return call(t, c, remoting.ReqPullMessage, ext, nil)
}

func TestSubscriptionGroupCreatedByHeartbeatAndKept(t *testing.T) {
	o := testOptions(t)
	o.MaxReconsumeTimes = 5
	b := startBroker(t, o)
	c := dial(t, b)
	hbOK(t, c, consumerHeartbeat("127.0.0.1@c1", "orders", "sg"))
	f := subGroups(t, c)
	want := SubscriptionGroupConfig{GroupName: "sg", ConsumeEnable: true, ConsumeFromMinEnable: true, ConsumeBroadcastEnable: true,
		RetryQueueNums: 1, RetryMaxTimes: 5, WhichBrokerWhenConsumeSlowly: 1, NotifyConsumerIdsChangedEnable: true}
	if got := f.SubscriptionGroupTable["sg"]; got != want || len(f.SubscriptionGroupTable) != 1 {
		t.Fatalf("after a heartbeat: %+v, want only sg = %+v", f.SubscriptionGroupTable, want)
	}
	if f.DataVersion.Counter != 1 || f.DataVersion.Timestamp == 0 {
		t.Errorf("dataVersion %+v, want counter 1 and a time", f.DataVersion)
	}
	// A pull of a group nobody created creates it too.
	if resp := pullAs(t, c, "pulled", "orders"); resp.Code == remoting.RespSubscriptionGroupNotExist {
		t.Fatalf("pull of a new group: %d %s", resp.Code, resp.Remark)
	}
	mustUpdateSubGroup(t, c, `{"groupName":"sg","consumeEnable":false,"retryMaxTimes":2}`)

	b.Close()
	b = startBroker(t, o)
	c = dial(t, b)
	f = subGroups(t, c)
	want.ConsumeEnable, want.RetryMaxTimes = false, 2
	if got := f.SubscriptionGroupTable["sg"]; got != want {
		t.Errorf("after a restart: sg = %+v, want %+v", got, want)
	}
	if _, ok := f.SubscriptionGroupTable["pulled"]; !ok || f.DataVersion.Counter != 3 {
		t.Errorf("after a restart: groups %v, dataVersion %+v, want pulled kept and counter 3", f.SubscriptionGroupTable, f.DataVersion)
	}
}

func TestSubscriptionGroupConsumeDisabledRefusesPulls(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	mustSend(t, c, "orders", 0, "", "m0")
	waitQueue(t, b, "orders", 0, 1)
	mustUpdateSubGroup(t, c, `{"groupName":"paused","consumeEnable":false}`)
	resp := pullAs(t, c, "paused", "orders")
	if resp.Code != remoting.RespNoPermission || !strings.Contains(resp.Remark, "paused") {
		t.Fatalf("pull of a disabled group: %d %q, want NO_PERMISSION naming it", resp.Code, resp.Remark)
	}
	if resp := pullAs(t, c, "other", "orders"); resp.Code != remoting.RespSuccess {
		t.Fatalf("another group's pull: %d %s", resp.Code, resp.Remark)
	}
	mustUpdateSubGroup(t, c, `{"groupName":"paused","consumeEnable":true}`)
	if resp := pullAs(t, c, "paused", "orders"); resp.Code != remoting.RespSuccess || len(decodeAll(t, resp.Body)) != 1 {
		t.Fatalf("pull after re-enabling: %d %s", resp.Code, resp.Remark)
	}
}

func TestSubscriptionGroupBroadcastDisabled(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	hbOK(t, c, bytes.Replace(consumerHeartbeat("127.0.0.1@b1", "orders", "bg"), []byte("CLUSTERING"), []byte("BROADCASTING"), 1))
	hbOK(t, c, consumerHeartbeat("127.0.0.1@c1", "orders", "cg2"))
	for _, g := range []string{"bg", "cg2"} {
		mustUpdateSubGroup(t, c, `{"groupName":"`+g+`","consumeEnable":true,"consumeBroadcastEnable":false}`)
	}
	if resp := pullAs(t, c, "bg", "orders"); resp.Code != remoting.RespNoPermission || !strings.Contains(resp.Remark, "broadcast") {
		t.Errorf("broadcasting pull: %d %q, want NO_PERMISSION (broadcast)", resp.Code, resp.Remark)
	}
	if resp := pullAs(t, c, "cg2", "orders"); resp.Code == remoting.RespNoPermission {
		t.Errorf("clustering pull refused: %s", resp.Remark)
	}
}

func TestSubscriptionGroupRetryMaxTimes(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	offs := appendTestMsgs(t, b, "orders", 0, 1)
	mustUpdateSubGroup(t, c, `{"groupName":"g","consumeEnable":true,"retryMaxTimes":1}`)
	// No maxReconsumeTimes in the request: the group's 1 applies, so the
	// first failure is retried and the second dead-lettered (the broker's
	// default, 16, would retry it).
	if resp := callSendBack(t, c, sendBackExt(offs[0], "g", "orders", 1, -1)); resp.Code != remoting.RespSuccess {
		t.Fatalf("send back: %d %s", resp.Code, resp.Remark)
	}
	retry := waitQueueMsgs(t, b, "%RETRY%g", 0, 1)[0]
	if resp := callSendBack(t, c, sendBackExt(retry.CommitLogOffset, "g", "orders", 1, -1)); resp.Code != remoting.RespSuccess {
		t.Fatalf("send back: %d %s", resp.Code, resp.Remark)
	}
	if dlq := waitQueueMsgs(t, b, "%DLQ%g", 0, 1)[0]; dlq.ReconsumeTimes != 2 {
		t.Errorf("dead-lettered copy has reconsumeTimes %d, want 2", dlq.ReconsumeTimes)
	}
	// The client's own limit wins over the group's.
	if resp := callSendBack(t, c, sendBackExt(retry.CommitLogOffset, "g", "orders", 1, 16)); resp.Code != remoting.RespSuccess {
		t.Fatalf("send back: %d %s", resp.Code, resp.Remark)
	}
	waitQueueMsgs(t, b, "%RETRY%g", 0, 2)
}

func TestSubscriptionGroupRetryQueueNums(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	mustUpdateSubGroup(t, c, `{"groupName":"wide","consumeEnable":true,"retryQueueNums":4}`)
	hbOK(t, c, consumerHeartbeat("127.0.0.1@c1", "orders", "wide"))
	if tc, ok := b.topics.get("%RETRY%wide"); !ok || tc.ReadQueueNums != 4 || tc.WriteQueueNums != 4 {
		t.Fatalf("retry topic %+v %v, want 4 queues", tc, ok)
	}
	offs := appendTestMsgs(t, b, "orders", 0, 1)
	const n = 40
	for range n {
		if resp := callSendBack(t, c, sendBackExt(offs[0], "wide", "orders", 1, 16)); resp.Code != remoting.RespSuccess {
			t.Fatalf("send back: %d %s", resp.Code, resp.Remark)
		}
	}
	used, total := 0, int64(0)
	waitFor(t, "the retries to arrive", func() bool {
		used, total = 0, 0
		for q := int32(0); q < 4; q++ {
			if _, hi := b.store.QueueBounds("%RETRY%wide", q); hi > 0 {
				used++
				total += hi
			}
		}
		return total == n
	})
	if used < 2 {
		t.Errorf("%d retries used %d of the 4 retry queues, want them spread", n, used)
	}
}

func TestSubscriptionGroupAutoCreateOff(t *testing.T) {
	o := testOptions(t)
	o.DisableAutoCreateSubscriptionGroup = true
	b := startBroker(t, o)
	c := dial(t, b)
	hbOK(t, c, consumerHeartbeat("127.0.0.1@c1", "orders", "late"))
	if f := subGroups(t, c); len(f.SubscriptionGroupTable) != 0 {
		t.Fatalf("a heartbeat created %v with auto-creation off", f.SubscriptionGroupTable)
	}
	if resp := pullAs(t, c, "late", "orders"); resp.Code != remoting.RespSubscriptionGroupNotExist {
		t.Fatalf("pull of an uncreated group: %d %s, want SUBSCRIPTION_GROUP_NOT_EXIST", resp.Code, resp.Remark)
	}
	mustUpdateSubGroup(t, c, `{"groupName":"late"}`)
	if resp := pullAs(t, c, "late", "orders"); resp.Code == remoting.RespSubscriptionGroupNotExist || resp.Code == remoting.RespNoPermission {
		t.Fatalf("pull of a created group: %d %s", resp.Code, resp.Remark)
	}
	if g := subGroups(t, c).SubscriptionGroupTable["late"]; !g.ConsumeEnable || g.RetryQueueNums != 1 || g.RetryMaxTimes != DefaultMaxReconsumeTimes {
		t.Errorf("fields left out of the update: %+v, want RocketMQ's defaults", g)
	}
}

func TestSubscriptionGroupUpdateBadInput(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	mustUpdateSubGroup(t, c, `{"groupName":"keep","retryMaxTimes":3}`)
	before := subGroups(t, c)
	for _, tc := range []struct {
		body string
		code int16
		want string
	}{
		{`{"groupName":`, remoting.RespSystemError, "bad subscription group config"},
		{`{"retryMaxTimes":3}`, remoting.RespInvalidParameter, "group"},
		{`{"groupName":"bad name"}`, remoting.RespInvalidParameter, "illegal"},
		{`{"groupName":"keep","retryQueueNums":0}`, remoting.RespInvalidParameter, "retryQueueNums 0"},
		{`{"groupName":"keep","retryQueueNums":2000}`, remoting.RespInvalidParameter, "retryQueueNums 2000"},
		{`{"groupName":"keep","retryMaxTimes":-1}`, remoting.RespInvalidParameter, "retryMaxTimes -1"},
		{`{"groupName":"keep","retryMaxTimes":"x"}`, remoting.RespSystemError, "bad subscription group config"},
	} {
		resp := updateSubGroup(t, c, tc.body)
		if resp.Code != tc.code || !strings.Contains(resp.Remark, tc.want) {
			t.Errorf("update %s: %d %q, want %d containing %q", tc.body, resp.Code, resp.Remark, tc.code, tc.want)
		}
	}
	if after := subGroups(t, c); after.DataVersion != before.DataVersion || len(after.SubscriptionGroupTable) != 1 ||
		after.SubscriptionGroupTable["keep"].RetryMaxTimes != 3 {
		t.Errorf("refused updates changed the table: %+v, was %+v", after, before)
	}
}

func TestSubscriptionGroupDeletedWithTheGroup(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	mustUpdateSubGroup(t, c, `{"groupName":"gone","consumeEnable":false}`)
	if resp := call(t, c, remoting.ReqDeleteSubscriptionGroup, map[string]string{"groupName": "gone"}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("delete: %d %s", resp.Code, resp.Remark)
	}
	if _, ok := subGroups(t, c).SubscriptionGroupTable["gone"]; ok {
		t.Fatal("the group's settings outlived DELETE_SUBSCRIPTIONGROUP")
	}
	// Coming back, it gets the defaults: it consumes again.
	if resp := pullAs(t, c, "gone", "orders"); resp.Code == remoting.RespNoPermission {
		t.Fatalf("pull after delete: %d %s", resp.Code, resp.Remark)
	}
}

func TestSubscriptionGroupNotifyDisabled(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	mustUpdateSubGroup(t, c, `{"groupName":"quiet","notifyConsumerIdsChangedEnable":false}`)
	mustUpdateSubGroup(t, c, `{"groupName":"loud"}`)
	got := b.notifyEnabled([]notice{{group: "quiet"}, {group: "loud"}, {group: "unknown"}})
	if len(got) != 2 || got[0].group != "loud" || got[1].group != "unknown" {
		t.Errorf("notices kept: %v, want loud and unknown", got)
	}
}

func TestSubscriptionGroupBadFileRefusesStart(t *testing.T) {
	for name, content := range map[string]string{
		"not JSON":      `{"subscriptionGroupTable":`,
		"invalid value": `{"subscriptionGroupTable":{"g":{"groupName":"g","retryQueueNums":0}}}`,
		"name mismatch": `{"subscriptionGroupTable":{"g":{"groupName":"h","retryQueueNums":1}}}`,
		"illegal group": `{"subscriptionGroupTable":{"a b":{"groupName":"a b","retryQueueNums":1}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			o := testOptions(t)
			path := filepath.Join(o.Store.Dir, "config", "subscriptionGroups.json")
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			b, err := Open(o)
			if err == nil {
				b.Close()
				t.Fatal("Open accepted a bad subscription groups file")
			}
			if !strings.Contains(err.Error(), "subscriptionGroups.json") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// With auto-creation off, the administrative pulls (`halfback dlq list`,
// `halfback consume` without --group, mqadmin's tools) still work: they
// pull as TOOLS_CONSUMER, which RocketMQ's SubscriptionGroupManager always
// has.
func TestSubscriptionGroupAutoCreateOffToolsStillPull(t *testing.T) {
	o := testOptions(t)
	o.DisableAutoCreateSubscriptionGroup = true
	b := startBroker(t, o)
	c := dial(t, b)
	mustSend(t, c, "orders", 0, "", "m0")
	waitQueue(t, b, "orders", 0, 1)
	if resp := pullAs(t, c, "TOOLS_CONSUMER", "orders"); resp.Code != remoting.RespSuccess {
		t.Fatalf("TOOLS_CONSUMER pull with auto-creation off: %d %s, want SUCCESS", resp.Code, resp.Remark)
	}
}

// With auto-creation off, a group whose consumers heartbeat before an
// administrator creates it gets its retry topic once created, with the
// retryQueueNums it was created with (RocketMQ's heartBeat creates the retry
// topic only for a group that has its settings).
func TestSubscriptionGroupCreatedAfterHeartbeatGetsItsRetryQueues(t *testing.T) {
	o := testOptions(t)
	o.DisableAutoCreateSubscriptionGroup = true
	b := startBroker(t, o)
	c := dial(t, b)
	hbOK(t, c, consumerHeartbeat("127.0.0.1@c1", "orders", "late"))
	mustUpdateSubGroup(t, c, `{"groupName":"late","retryQueueNums":4}`)
	hbOK(t, c, consumerHeartbeat("127.0.0.1@c1", "orders", "late"))
	if tc, ok := b.topics.get("%RETRY%late"); !ok || tc.ReadQueueNums != 4 || tc.WriteQueueNums != 4 {
		t.Fatalf("retry topic of a group created with retryQueueNums 4: %+v (exists %v), want 4 queues", tc, ok)
	}
}

// A change the table cannot write is refused and leaves the table as it
// was: a pause that is not on disk would be undone by a restart.
func TestSubscriptionGroupUnwrittenChangeIsUndone(t *testing.T) {
	dir := t.TempDir()
	tab, err := openSubGroupTable(dir, true, 16)
	if err != nil {
		t.Fatal(err)
	}
	on := defaultSubscriptionGroup("g", 16)
	if err := tab.put(on); err != nil {
		t.Fatal(err)
	}
	ver := tab.version
	// A non-empty directory where the file goes: every write fails, even
	// for root.
	if err := os.Remove(tab.path); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(tab.path, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	off := on
	off.ConsumeEnable = false
	if err := tab.put(off); err == nil {
		t.Fatal("put succeeded with the file unwritable")
	}
	if err := tab.put(defaultSubscriptionGroup("new", 16)); err == nil {
		t.Fatal("put of a new group succeeded with the file unwritable")
	}
	if removed, err := tab.remove("g"); err == nil || removed {
		t.Fatalf("remove = %v, %v with the file unwritable", removed, err)
	}
	if c, ok := tab.get("g"); !ok || c != on || tab.version != ver {
		t.Errorf("after refused changes: g = %+v (%v), version %+v; want %+v, version %+v", c, ok, tab.version, on, ver)
	}
	if _, ok := tab.get("new"); ok {
		t.Error("a group whose creation was refused is in the table")
	}
}

// A data directory from before the table (no subscriptionGroups.json)
// gets settings for the groups it names, so that turning auto-creation
// off at the same restart refuses none of them.
func TestSubscriptionGroupsSeededFromAnOlderDataDir(t *testing.T) {
	o := testOptions(t)
	b, c := startWithCommittedGroup(t, o)
	hbOK(t, c, consumerHeartbeat("127.0.0.1@c1", "orders", "member"))
	b.Close()
	if err := os.Remove(filepath.Join(o.Store.Dir, "config", "subscriptionGroups.json")); err != nil {
		t.Fatal(err)
	}

	o.DisableAutoCreateSubscriptionGroup = true
	b = startBroker(t, o)
	c = dial(t, b)
	f := subGroups(t, c)
	for _, g := range []string{"committed", "member"} {
		if s, ok := f.SubscriptionGroupTable[g]; !ok || !s.ConsumeEnable {
			t.Errorf("group %s after the upgrade: %+v (%v), want the defaults", g, s, ok)
		}
		if resp := pullAs(t, c, g, "orders"); resp.Code == remoting.RespSubscriptionGroupNotExist {
			t.Errorf("pull of %s refused after the upgrade: %s", g, resp.Remark)
		}
	}
	if resp := pullAs(t, c, "stranger", "orders"); resp.Code != remoting.RespSubscriptionGroupNotExist {
		t.Errorf("pull of an unknown group: %d %s, want SUBSCRIPTION_GROUP_NOT_EXIST", resp.Code, resp.Remark)
	}
}

// Seeding is for a data directory from before the table, once: a broker
// that started with this table and auto-creation off does not give a
// group it refused settings at its next restart because the group
// committed offsets meanwhile.
func TestSubscriptionGroupsNotSeededAfterTheFirstStart(t *testing.T) {
	o := testOptions(t)
	o.DisableAutoCreateSubscriptionGroup = true
	b := startBroker(t, o)
	c := dial(t, b)
	mustSend(t, c, "orders", 0, "", "m0")
	waitQueue(t, b, "orders", 0, 1)
	if resp := pullAs(t, c, "stranger", "orders"); resp.Code != remoting.RespSubscriptionGroupNotExist {
		t.Fatalf("pull of an unknown group: %d %s, want SUBSCRIPTION_GROUP_NOT_EXIST", resp.Code, resp.Remark)
	}
	if resp := call(t, c, remoting.ReqUpdateConsumerOffset, map[string]string{"consumerGroup": "stranger", "topic": "orders", "queueId": "0", "commitOffset": "1"}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("commit: %d %s", resp.Code, resp.Remark)
	}
	b.Close()

	b = startBroker(t, o)
	c = dial(t, b)
	if s, ok := subGroups(t, c).SubscriptionGroupTable["stranger"]; ok {
		t.Errorf("after a restart the refused group has settings: %+v", s)
	}
	if resp := pullAs(t, c, "stranger", "orders"); resp.Code != remoting.RespSubscriptionGroupNotExist {
		t.Errorf("pull of the refused group after a restart: %d %s, want SUBSCRIPTION_GROUP_NOT_EXIST", resp.Code, resp.Remark)
	}
}

// Seeding waits for a readable offsets file: a data directory from
// before the table whose consumerOffset.json cannot be read at the
// upgrade does not lose, for good, the settings of the groups only that
// file names.
func TestSubscriptionGroupsNotSeededWhileOffsetsAreUnreadable(t *testing.T) {
	o := testOptions(t)
	b, _ := startWithCommittedGroup(t, o)
	b.Close()
	if err := os.Remove(filepath.Join(o.Store.Dir, "config", "subscriptionGroups.json")); err != nil {
		t.Fatal(err)
	}
	offsets := filepath.Join(o.Store.Dir, "config", "consumerOffset.json")
	good, err := os.ReadFile(offsets)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(offsets, good[:len(good)/2], 0o644); err != nil { // torn
		t.Fatal(err)
	}

	o.DisableAutoCreateSubscriptionGroup = true
	b = startBroker(t, o)
	c := dial(t, b)
	// An administration command's group, which gets settings even with
	// auto-creation off, writes nothing either.
	if resp := pullAs(t, c, toolsConsumerGroup, "orders"); resp.Code == remoting.RespSubscriptionGroupNotExist {
		t.Errorf("pull of %s refused: %s", toolsConsumerGroup, resp.Remark)
	}
	b.Close()
	if err := os.WriteFile(offsets, good, 0o644); err != nil { // repaired
		t.Fatal(err)
	}
	b = startBroker(t, o)
	c = dial(t, b)
	if s, ok := subGroups(t, c).SubscriptionGroupTable["committed"]; !ok || !s.ConsumeEnable {
		t.Errorf("group committed once its offsets file is repaired: %+v (%v), want the defaults", s, ok)
	}
	if resp := pullAs(t, c, "committed", "orders"); resp.Code == remoting.RespSubscriptionGroupNotExist {
		t.Errorf("pull of committed refused once its offsets file is repaired: %s", resp.Remark)
	}
}

// startWithCommittedGroup starts a broker with o, stores a message in
// orders and commits group "committed"'s offset past it.
func startWithCommittedGroup(t *testing.T, o Options) (*Broker, *remoting.Conn) {
	t.Helper()
	b := startBroker(t, o)
	c := dial(t, b)
	mustSend(t, c, "orders", 0, "", "m0")
	waitQueue(t, b, "orders", 0, 1)
	if resp := call(t, c, remoting.ReqUpdateConsumerOffset, map[string]string{"consumerGroup": "committed", "topic": "orders", "queueId": "0", "commitOffset": "1"}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("commit: %d %s", resp.Code, resp.Remark)
	}
	return b, c
}
