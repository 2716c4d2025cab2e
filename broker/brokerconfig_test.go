package broker

import (
	"strconv"
	"strings"
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/admin"
)

// GET_BROKER_CONFIG answers the settings the broker runs with as a
// properties text under RocketMQ's names and units, defaults filled in,
// one sorted line per setting, as mqadmin getBrokerConfig reads it; a
// value with a backslash or a line break (a path) reads back whole.
func TestGetBrokerConfig(t *testing.T) {
	o := testOptions(t)
	o.Store.Dir += "/odd dir\\with\nbreaks"
	o.BrokerName, o.ClusterName, o.DefaultQueueNums = "broker-x", "Payments", 6
	o.Txn.CheckMax = 7
	o.EnablePropertyFilter = true
	o.NamesrvAddrs = []string{"127.0.0.1:1", "127.0.0.1:2"}
	b := startBroker(t, o)
	resp := call(t, dial(t, b), remoting.ReqGetBrokerConfig, nil, nil)
	if resp.Code != remoting.RespSuccess || !strings.Contains(resp.Ext("version"), `"counter":`) {
		t.Fatalf("GET_BROKER_CONFIG: %d %q %v", resp.Code, resp.Remark, resp.ExtFields)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSuffix(string(resp.Body), "\n"), "\n") {
		name, _, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("line %q is not name=value:\n%s", line, resp.Body)
		}
		names = append(names, name)
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Fatalf("settings not sorted: %q before %q", names[i-1], names[i])
		}
	}
	got := brokerConfigOf(t, b)
	_, port, _ := strings.Cut(b.Addr(), ":")
	// Settings come from the config at start: a change is refused.
	if r := call(t, dial(t, b), remoting.ReqUpdateBrokerConfig, nil, []byte("flushDiskType=ASYNC_FLUSH\n")); r.Code != remoting.RespRequestCodeNotSupported {
		t.Fatalf("UPDATE_BROKER_CONFIG: %d %q, want REQUEST_CODE_NOT_SUPPORTED", r.Code, r.Remark)
	}
	for k, want := range map[string]string{
		"brokerName": "broker-x", "brokerClusterName": "Payments", "brokerId": "0", "listenPort": port,
		"namesrvAddr": "127.0.0.1:1;127.0.0.1:2", "defaultTopicQueueNums": "6", "autoCreateTopicEnable": "true",
		"enablePropertyFilter": "true", "flushDiskType": "SYNC_FLUSH", "syncFlushTimeout": "5000",
		"flushIntervalCommitLog": "500", "mappedFileSizeCommitLog": strconv.Itoa(16 << 20), "fileReservedTime": "72",
		"diskMaxUsedSpaceRatio": "85", "maxMessageSize": strconv.Itoa(4 << 20), "storePathRootDir": o.Store.Dir,
		"messageDelayLevel": "100ms 200ms 300ms 400ms 500ms", "transactionCheckMax": "7",
		"transactionTimeOut": "6000", "transactionCheckInterval": "30000", "accessMessageInMemoryMaxRatio": "40",
		"useServerSideResetOffset": "true", "halfbackLongPollTimeout": "2000", "halfbackMaxReconsumeTimes": "16",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
}

// mqadmin reads GET_BROKER_CONFIG's body with java.util.Properties.load
// of a byte stream, which takes every byte as ISO 8859-1: a value beyond
// ASCII (a store directory under a user's home, say) must go as \uXXXX
// escapes, or the tool shows it garbled; halfback's own reader gives it
// back whole, a character beyond the BMP too.
func TestGetBrokerConfigNonASCIIValue(t *testing.T) {
	o := testOptions(t)
	o.Store.Dir += "/jürgen/数据/🐟"
	b := startBroker(t, o)
	resp := call(t, dial(t, b), remoting.ReqGetBrokerConfig, nil, nil)
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("GET_BROKER_CONFIG: %d %q", resp.Code, resp.Remark)
	}
	for i, c := range resp.Body {
		if c >= 0x80 {
			t.Fatalf("byte %d of the body is %#x, which Properties.load reads as ISO 8859-1:\n%s", i, c, resp.Body)
		}
	}
	if !strings.Contains(string(resp.Body), `/j\u00FCrgen/\u6570\u636E/\uD83D\uDC1F`) {
		t.Fatalf("store path not escaped as Java writes it:\n%s", resp.Body)
	}
	got := brokerConfigOf(t, b)
	if got["storePathRootDir"] != o.Store.Dir {
		t.Fatalf("storePathRootDir = %q, want %q", got["storePathRootDir"], o.Store.Dir)
	}
}

// brokerConfigOf asks b for its settings as admin.BrokerConfig reads them.
func brokerConfigOf(t *testing.T, b *Broker) map[string]string {
	t.Helper()
	ac, err := admin.Dial(t.Context(), b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	got, err := ac.BrokerConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return got
}
