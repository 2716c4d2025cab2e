package broker

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/delay"
)

// registerConfig handles GET_BROKER_CONFIG (mqadmin getBrokerConfig, the
// RocketMQ dashboard's broker config view).
func (b *Broker) registerConfig(mux *remoting.Mux) {
	mux.HandleFunc(remoting.ReqGetBrokerConfig, b.handleGetConfig)
}

// Config returns the settings the broker runs with, defaults filled in,
// under the names of RocketMQ's BrokerConfig and MessageStoreConfig where
// a setting means the same (its units too: milliseconds, hours, percent),
// and halfback's own, prefixed "halfback", for the rest. It is what
// GET_BROKER_CONFIG reports; the settings come from config.yaml at start
// and do not change while the broker runs.
func (b *Broker) Config() map[string]string {
	o := b.opts
	so, to := b.store.Options(), b.txn.Options()
	itoa := func(v int64) string { return strconv.FormatInt(v, 10) }
	host, port, _ := net.SplitHostPort(b.addr)
	return map[string]string{
		"brokerClusterName":             o.ClusterName,
		"brokerName":                    o.BrokerName,
		"brokerId":                      "0",
		"brokerRole":                    "ASYNC_MASTER", // a master with no slaves
		"brokerIP1":                     host,
		"listenPort":                    port,
		"namesrvAddr":                   strings.Join(o.NamesrvAddrs, ";"),
		"brokerPermission":              strconv.Itoa(PermRW),
		"autoCreateTopicEnable":         strconv.FormatBool(!o.DisableAutoCreateTopic),
		"defaultTopicQueueNums":         strconv.Itoa(o.DefaultQueueNums),
		"autoCreateSubscriptionGroup":   strconv.FormatBool(!o.DisableAutoCreateSubscriptionGroup),
		"enablePropertyFilter":          strconv.FormatBool(o.EnablePropertyFilter),
		"longPollingEnable":             "true",
		"useServerSideResetOffset":      strconv.FormatBool(!o.ClientSideResetOffset),
		"registerNameServerPeriod":      itoa(o.RegisterInterval.Milliseconds()),
		"accessMessageInMemoryMaxRatio": strconv.Itoa(int(o.AccessMessageInMemoryMaxRatio*100 + 0.5)),
		"storePathRootDir":              so.Dir,
		"storePathCommitLog":            filepath.Join(so.Dir, "commitlog"),
		"mappedFileSizeCommitLog":       itoa(so.SegmentSize),
		"mappedFileSizeConsumeQueue":    strconv.Itoa(so.QueueEntriesPerFile * 20),
		"flushDiskType":                 so.FlushType.String(),
		"syncFlushTimeout":              itoa(so.SyncFlushTimeout.Milliseconds()),
		"flushIntervalCommitLog":        itoa(so.FlushInterval.Milliseconds()),
		"fileReservedTime":              strconv.FormatFloat(so.FileReserved.Hours(), 'f', -1, 64),
		"diskMaxUsedSpaceRatio":         strconv.Itoa(int(so.DiskMaxUsedRatio*100 + 0.5)),
		"maxMessageSize":                strconv.Itoa(so.MaxMessageSize),
		"messageDelayLevel":             delay.FormatLevels(b.delayLevels),
		"transactionTimeOut":            itoa(to.Timeout.Milliseconds()),
		"transactionCheckInterval":      itoa(to.CheckInterval.Milliseconds()),
		"transactionCheckMax":           strconv.Itoa(to.CheckMax),
		"halfbackVersion":               b.version(),
		"halfbackLongPollTimeout":       itoa(o.LongPollTimeout.Milliseconds()),
		"halfbackMaxReconsumeTimes":     strconv.Itoa(o.MaxReconsumeTimes),
		"halfbackDiskFullRatio":         strconv.Itoa(int(so.DiskFullRatio*100 + 0.5)),
		"halfbackMaxInFlightBytes":      itoa(o.MaxInFlightBytes),
		"halfbackLifecycle":             strconv.FormatBool(!o.DisableLifecycle),
		"halfbackLifecycleRetention":    strconv.FormatFloat(o.LifecycleRetention.Hours(), 'f', -1, 64),
	}
}

// handleGetConfig answers Config as RocketMQ's broker does: the body is a
// properties text, one "name=value" line per setting (sorted here), which
// mqadmin reads with java.util.Properties; the header's version is the
// configuration's data version (it never changes here).
func (b *Broker) handleGetConfig(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	cfg := b.Config()
	names := make([]string, 0, len(cfg))
	for n := range cfg {
		names = append(names, n)
	}
	slices.Sort(names)
	var body []byte
	for _, n := range names {
		body = append(body, n...)
		body = append(body, '=')
		body = appendPropertiesValue(body, cfg[n])
		body = append(body, '\n')
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.ExtFields["version"] = `{"counter":0,"timestamp":` + strconv.FormatInt(b.counts.started.UnixMilli(), 10) + `}`
	resp.Body = body
	return resp
}

// appendPropertiesValue appends v escaped as java.util.Properties.load
// reads a value back: a backslash doubled, a leading space, tabs, line
// breaks and form feeds escaped (a path may hold any of them), and every
// other control character and every character beyond ASCII as \uXXXX
// (UTF-16, as Properties.store writes them): mqadmin loads the body as a
// byte stream, which Java reads as ISO 8859-1, so UTF-8 would come out
// garbled.
func appendPropertiesValue(b []byte, v string) []byte {
	for i, r := range v {
		switch {
		case r == '\\':
			b = append(b, `\\`...)
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\r':
			b = append(b, `\r`...)
		case r == '\t':
			b = append(b, `\t`...)
		case r == '\f':
			b = append(b, `\f`...)
		case r == ' ' && i == 0:
			b = append(b, `\ `...)
		case r < 0x20 || r >= 0x7f:
			if r1, r2 := utf16.EncodeRune(r); r1 != unicode.ReplacementChar {
				b = appendUnicodeEscape(appendUnicodeEscape(b, r1), r2)
			} else {
				b = appendUnicodeEscape(b, r)
			}
		default:
			b = append(b, byte(r))
		}
	}
	return b
}

// appendUnicodeEscape appends the UTF-16 code unit u as \uXXXX.
func appendUnicodeEscape(b []byte, u rune) []byte {
	const hex = "0123456789ABCDEF"
	return append(b, '\\', 'u', hex[u>>12&0xf], hex[u>>8&0xf], hex[u>>4&0xf], hex[u&0xf])
}
