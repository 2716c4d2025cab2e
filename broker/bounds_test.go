package broker

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// TestViewMessageRefusesForgedRecord: VIEW_MESSAGE_BY_ID at an offset
// inside a message body that imitates a record header (magic, its own
// physical offset, a size of megabytes) is refused, not answered with the
// commit log's bytes from there on, other topics' messages included.
func TestViewMessageRefusesForgedRecord(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	const bodyLen, forgedSize = 64, 6 << 20
	probe := mustSend(t, c, "forge", 0, "", strings.Repeat("p", bodyLen))
	_, p0, err := message.ParseOffsetMsgID(probe.Ext("msgId"))
	if err != nil {
		t.Fatal(err)
	}
	v := call(t, c, remoting.ReqViewMessageByID, map[string]string{"offset": strconv.FormatInt(p0, 10)}, nil)
	if v.Code != remoting.RespSuccess {
		t.Fatalf("view the probe: code %d %q", v.Code, v.Remark)
	}
	k := int64(bytes.Index(v.Body, []byte(strings.Repeat("p", bodyLen))))
	// The next record, of the same size, starts where the probe ends.
	forgedAt := p0 + int64(len(v.Body)) + k
	body := make([]byte, bodyLen)
	binary.BigEndian.PutUint32(body, forgedSize)
	binary.BigEndian.PutUint32(body[4:], uint32(0xDAA320A7)) // message.MagicCode
	binary.BigEndian.PutUint64(body[28:], uint64(forgedAt))
	sent := mustSend(t, c, "forge", 0, "", string(body))
	if _, p1, _ := message.ParseOffsetMsgID(sent.Ext("msgId")); p1+k != forgedAt {
		t.Fatalf("forged body at %d, want %d", p1+k, forgedAt)
	}
	for range 3 {
		mustSend(t, c, "other", 0, "", strings.Repeat("s", 3<<20))
	}
	v = call(t, c, remoting.ReqViewMessageByID, map[string]string{"offset": strconv.FormatInt(forgedAt, 10)}, nil)
	if v.Code != remoting.RespSystemError {
		t.Fatalf("view of a forged record: code %d, %d bytes of body; want SYSTEM_ERROR", v.Code, len(v.Body))
	}
}

// TestHeartbeatOfManyGroupsAnswersPromptly: a heartbeat naming thousands
// of consumer groups (a 1 MiB body) creates their settings and retry
// topics in one write of each file, not one (synced) write per group: that
// kept the connection's handler busy for minutes, past every client's
// heartbeat timeout, and wrote gigabytes.
func TestHeartbeatOfManyGroupsAnswersPromptly(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	groups := make([]string, 5000)
	for i := range groups {
		groups[i] = "hbg" + strconv.Itoa(i)
	}
	if r := call(t, c, remoting.ReqHeartBeat, nil, consumerHeartbeat("many", "t", groups...)); r.Code != remoting.RespSuccess {
		t.Fatalf("heartbeat: code %d %q", r.Code, r.Remark)
	}
	for _, g := range []string{groups[0], groups[len(groups)-1]} {
		if _, ok := b.subGroups.get(g); !ok {
			t.Errorf("group %s has no settings", g)
		}
		if tc, ok := b.topics.get(RetryTopic(g)); !ok || tc.WriteQueueNums != 1 || tc.Perm != PermRW {
			t.Errorf("retry topic of %s: %+v %v", g, tc, ok)
		}
	}
}
