package remoting

import (
	"bytes"
	"testing"
)

// BenchmarkDecodeSendHeader decodes the frame of a SEND_MESSAGE_V2 request
// as the official Go client sends it (JSON header, 14 ext fields), and as
// the Java client can (ROCKETMQ encoding): the broker's hottest decode.
func BenchmarkDecodeSendHeader(b *testing.B) {
	for _, st := range []struct {
		name string
		typ  SerializeType
	}{{"json", SerializeJSON}, {"rocketmq", SerializeRocketMQ}} {
		cmd := benchSendRequest(st.typ)
		frame, err := Encode(cmd)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(st.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if _, err := Decode(bytes.NewReader(frame), DefaultMaxFrameSize); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchSendRequest is a SEND_MESSAGE_V2 request as the official Go client
// sends it: 14 ext fields and a 1 KiB body.
func benchSendRequest(typ SerializeType) *Command {
	return &Command{Code: ReqSendMessageV2, Language: LanguageGo, Version: 317, Opaque: 42, SerializeType: typ,
		ExtFields: map[string]string{"a": "pg", "b": "orders", "c": "TBW102", "d": "4", "e": "1", "f": "0",
			"g": "1763990400000", "h": "0", "i": "UNIQ_KEY\x01AC11000100002A9F00000000000000\x02TAGS\x01OrderPaid\x02",
			"j": "0", "k": "false", "l": "16", "m": "false", "n": ""},
		Body: bytes.Repeat([]byte("x"), 1024)}
}

// BenchmarkEncodeSendRequest encodes that request: a Go client's side of
// every send.
func BenchmarkEncodeSendRequest(b *testing.B) {
	for _, st := range []struct {
		name string
		typ  SerializeType
	}{{"json", SerializeJSON}, {"rocketmq", SerializeRocketMQ}} {
		cmd := benchSendRequest(st.typ)
		b.Run(st.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Encode(cmd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodeSendResponse encodes the answer to a send as the broker
// writes it back to a Go client (JSON header, 6 ext fields) and to a
// ROCKETMQ-encoding client.
func BenchmarkEncodeSendResponse(b *testing.B) {
	for _, st := range []struct {
		name string
		typ  SerializeType
	}{{"json", SerializeJSON}, {"rocketmq", SerializeRocketMQ}} {
		cmd := &Command{Code: RespSuccess, Language: LanguageJava, Version: 317, Opaque: 42, Flag: 1, SerializeType: st.typ,
			ExtFields: map[string]string{"msgId": "7F00000100002A9F00000000000A1B2C", "queueId": "3", "queueOffset": "123456",
				"transactionId": "AC11000100002A9F00000000000000", "MSG_REGION": "DefaultRegion", "TRACE_ON": "true"}}
		b.Run(st.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Encode(cmd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
