package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/halfbackmq/halfback/broker/lifecycle"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/message"
)

// Send response ext fields the Go and Java clients read besides
// SendMessageResponseHeader's msgId, queueId, queueOffset and transactionId
// (MessageConst.PROPERTY_MSG_REGION and PROPERTY_TRACE_SWITCH).
const (
	extMsgRegion    = "MSG_REGION"
	extTraceSwitch  = "TRACE_ON"
	defaultRegionID = "DefaultRegion" // BrokerConfig.regionId's default
)

// sendForbiddenTopics are the system topics a producer may not write to
// directly: RocketMQ's TopicValidator NOT_ALLOWED_SEND_TOPIC_SET plus the
// auto-create key topic and halfback's delay topics.
var sendForbiddenTopics = map[string]bool{
	delay.ScheduleTopic:      true,
	delay.TimerTopic:         true,
	"SCHEDULE_TOPIC_XXXX_V2": true,
	txn.HalfTopic:            true,
	txn.OpTopic:              true,
	txn.CheckMaxTopic:        true,
	"SELF_TEST_TOPIC":        true,
	"OFFSET_MOVED_EVENT":     true,
	"TBW102":                 true,
}

// registerSend handles SEND_MESSAGE, SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE.
func (b *Broker) registerSend(mux *remoting.Mux) {
	mux.HandleFunc(remoting.ReqSendMessage, b.handleSend)
	mux.HandleFunc(remoting.ReqSendMessageV2, b.handleSend)
	mux.HandleFunc(remoting.ReqSendBatchMessage, b.handleSend)
}

// sendHeader is SendMessageRequestHeader, read from either the long field
// names (SEND_MESSAGE) or the V2 short names a..n (SEND_MESSAGE_V2,
// SEND_BATCH_MESSAGE).
type sendHeader struct {
	producerGroup  string
	topic          string
	queueID        int32
	sysFlag        int32
	bornTimestamp  int64
	flag           int32
	properties     string
	reconsumeTimes int32
	batch          bool
	// maxReconsumeTimes is the sending consumer's retry limit, on a send
	// to %RETRY%<group>; -1 when absent.
	maxReconsumeTimes int32
}

// sendFieldsV1 and sendFieldsV2 name the header fields in the order of
// sendHeader: SendMessageRequestHeader's names and SendMessageRequestHeaderV2's
// letters (a producerGroup, b topic, c defaultTopic, d defaultTopicQueueNums,
// e queueId, f sysFlag, g bornTimestamp, h flag, i properties,
// j reconsumeTimes, k unitMode, l maxReconsumeTimes, m batch, n brokerName).
var (
	sendFieldsV1 = [...]string{"producerGroup", "topic", "queueId", "sysFlag", "bornTimestamp", "flag", "properties", "reconsumeTimes", "batch", "maxReconsumeTimes"}
	sendFieldsV2 = [...]string{"a", "b", "e", "f", "g", "h", "i", "j", "m", "l"}
)

func parseSendHeader(req *remoting.Command) (sendHeader, error) {
	names := sendFieldsV1
	if usesV2Header(req.Code) {
		names = sendFieldsV2
	}
	r := reqHeader{req: req}
	h := sendHeader{
		producerGroup:  r.str(names[0], true),
		topic:          r.str(names[1], true),
		queueID:        r.i32(names[2], true),
		sysFlag:        r.i32(names[3], true),
		bornTimestamp:  r.i64(names[4], true),
		flag:           r.i32(names[5], true),
		properties:     r.str(names[6], false),
		reconsumeTimes: r.i32(names[7], false),
		batch:          r.boolean(names[8]) || req.Code == remoting.ReqSendBatchMessage,
	}
	h.maxReconsumeTimes = -1
	if _, ok := req.ExtFields[names[9]]; ok {
		h.maxReconsumeTimes = r.i32(names[9], true)
	}
	return h, r.err
}

// usesV2Header reports the request codes whose SendMessageRequestHeader
// comes with V2's short field names.
func usesV2Header(code int16) bool {
	return code == remoting.ReqSendMessageV2 || code == remoting.ReqSendBatchMessage || code == remoting.ReqSendReplyMessageV2
}

// refuseSend checks what a send names before its topic is looked up (see
// refuseMessage) and that the disk is not full. A non-nil response is the
// refusal.
func (b *Broker) refuseSend(req *remoting.Command, h sendHeader) *remoting.Command {
	if resp := b.refuseMessage(req, h); resp != nil {
		return resp
	}
	if full, usage := b.store.DiskFull(); full {
		// As RocketMQ above diskSpaceWarningLevelRatio: clients retry on
		// another broker. What is stored is still consumed, delivered and
		// resolved, and retention frees space.
		return remoting.NewResponse(req, remoting.RespServiceNotAvailable, fmt.Sprintf(
			"service not available now: the broker's disk is full (%.1f%% used, above store.diskFullRatio); "+
				"sends are refused until retention or an operator frees space", usage*100))
	}
	return nil
}

// refuseMessage checks what a send or a reply names before its topic is
// looked up: the topic's name, that it is not a system topic, the body's
// size. A non-nil response is the refusal.
func (b *Broker) refuseMessage(req *remoting.Command, h sendHeader) *remoting.Command {
	if err := message.ValidateTopic(h.topic); err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "the specified topic is illegal: "+err.Error())
	}
	if isSystemTopic(h.topic) { // also rmq_sys_*: the topic table drops those on restart
		return remoting.NewResponse(req, remoting.RespNoPermission, "Sending message to topic["+h.topic+"] is forbidden.")
	}
	if limit := b.maxMessageSize(); len(req.Body) > limit {
		return remoting.NewResponse(req, remoting.RespMessageIllegal,
			fmt.Sprintf("message body of %d bytes exceeds the limit of %d bytes", len(req.Body), limit))
	}
	return nil
}

// diskFull reports whether the store's disk is full (store.DiskFull):
// producers' sends are refused and lifecycle events are not recorded.
func (b *Broker) diskFull() bool {
	full, _ := b.store.DiskFull()
	return full
}

// sendQueue looks up (or auto-creates) a send's topic, checks that it is
// writable and returns the queue to store in: the one the send names, a
// random writable one for a negative id. A non-nil response is the refusal.
func (b *Broker) sendQueue(req *remoting.Command, h sendHeader) (int32, *remoting.Command) {
	tc, err := b.topicForSend(h.topic)
	switch {
	case errors.Is(err, ErrTopicNotExist):
		return 0, remoting.NewResponse(req, remoting.RespTopicNotExist, "topic["+h.topic+"] not exist, apply first please!")
	case err != nil:
		return 0, remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	case tc.Perm&PermWrite == 0:
		return 0, remoting.NewResponse(req, remoting.RespNoPermission, "the topic["+h.topic+"] sending message is forbidden")
	}
	qid := h.queueID
	if qid < 0 {
		qid = rand.Int32N(int32(tc.WriteQueueNums))
	} else if int(qid) >= max(tc.WriteQueueNums, tc.ReadQueueNums) {
		// As RocketMQ: a queue the topic does not have is an error, never
		// quietly another queue (that would break per-key ordering).
		return 0, remoting.NewResponse(req, remoting.RespSystemError,
			fmt.Sprintf("queueId[%d] is illegal, topic:[%s] topicConfig.writeQueueNums:[%d]", qid, h.topic, tc.WriteQueueNums))
	}
	return qid, nil
}

func (b *Broker) handleSend(ctx context.Context, conn *remoting.Conn, req *remoting.Command) *remoting.Command {
	h, err := parseSendHeader(req)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	if resp := b.refuseSend(req, h); resp != nil {
		return resp
	}
	// As RocketMQ's SendMessageProcessor: every stored message names its
	// cluster, which a request-reply responder needs (reply.go).
	h.properties = b.withCluster(h.properties)
	group, toDLQ, orderly := b.retryExhausted(h)
	if toDLQ {
		// As RocketMQ's handleRetryAndDLQ: the Java client sends a retry
		// with a plain send when its send-back failed, and its orderly
		// consumer always does.
		h.topic, h.queueID = DLQTopic(group), 0
		h.properties = withoutDelay(h.properties)
		if err := b.ensureGroupTopic(h.topic, 1); err != nil {
			return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
		}
	}
	qid, resp := b.sendQueue(req, h)
	if resp != nil {
		return resp
	}
	if isTransactionalSend(h) {
		return b.sendHalf(ctx, req, h, qid, bornHostOf(conn))
	}
	start := time.Now()
	msgs, resp := b.buildSendMessages(req, h, qid, bornHostOf(conn))
	if resp != nil {
		return resp
	}
	res, err := b.store.AppendBatch(ctx, msgs)
	b.metrics.stored(h.topic, len(msgs), err)
	b.counts.stored(len(msgs), err)
	if written(err) {
		b.delay.Scheduled(msgs...)
	}
	if group != "" && len(msgs) == 1 {
		// A retry sent as a message (RocketMQ's Java client when its
		// send-back failed, and its orderly consumer's): a send-back by
		// the consumer's client, or past its limit a dead letter, as a
		// send-back's.
		var r store.AppendResult
		if len(res) > 0 {
			r = res[0]
		}
		from := lifecycle.FromClient
		if toDLQ {
			// An orderly group's count is its consumer's (local retries),
			// and the dead letter its request, as a send-back at level -1.
			from = ""
			if orderly {
				from = lifecycle.FromConsumer
			}
		}
		b.traceSendBack(msgs[0], group, toDLQ, from, r, start, err)
	} else {
		b.traceStored(msgs, res, start, err)
	}
	if group != "" && !toDLQ && err == nil && len(msgs) == 1 {
		b.metrics.sentBack(group, false) // a retry its consumer's client sent
	}
	if toDLQ && err == nil {
		b.metrics.sentBack(group, true)
		b.opts.Logger.Warn("message moved to the dead-letter queue", "group", group,
			"reconsumeTimes", h.reconsumeTimes, "dlqOffset", res[0].PhysicalOffset)
	}
	return sendResponse(req, qid, res, err)
}

// retryExhausted reports whether a send to %RETRY%<group> goes to the
// group's dead-letter queue instead: its reconsume count is past the
// limit the consumer sent (else the group's retryMaxTimes), or the group consumes
// orderly (holds a queue lock), which it reports too, read once for the
// whole send. RocketMQ's handleRetryAndDLQ; note the strict ">", where a
// send-back dead-letters at ">=".
func (b *Broker) retryExhausted(h sendHeader) (group string, dlq, orderly bool) {
	group, ok := strings.CutPrefix(h.topic, RetryGroupTopicPrefix)
	if !ok || h.batch || group == "" {
		return "", false, false
	}
	limit := int(h.maxReconsumeTimes)
	if limit < 0 {
		limit = b.retryMaxTimes(group)
	}
	orderly = b.groupIsOrderly(group)
	return group, int(h.reconsumeTimes) > limit || orderly, orderly
}

// buildSendMessages turns a send request into the messages to store, in
// their scheduled form when delayed. A non-nil response is a refusal.
func (b *Broker) buildSendMessages(req *remoting.Command, h sendHeader, qid int32, bornHost netip.AddrPort) ([]*message.Message, *remoting.Command) {
	base := message.Message{
		Topic:          h.topic,
		QueueID:        qid,
		Flag:           h.flag,
		SysFlag:        h.sysFlag,
		BornTimestamp:  h.bornTimestamp,
		BornHost:       bornHost,
		ReconsumeTimes: h.reconsumeTimes,
		Body:           req.Body,
		Properties:     h.properties,
	}
	if !h.batch {
		m := base
		if _, err := b.delay.Prepare(&m); err != nil {
			return nil, remoting.NewResponse(req, remoting.RespMessageIllegal, err.Error())
		}
		return []*message.Message{&m}, nil
	}
	if strings.HasPrefix(h.topic, "%RETRY%") {
		return nil, remoting.NewResponse(req, remoting.RespMessageIllegal, "batch request does not support retry group "+h.topic)
	}
	msgs, err := decodeBatch(base, req.Body, h.properties)
	if err != nil {
		return nil, remoting.NewResponse(req, remoting.RespMessageIllegal, err.Error())
	}
	for _, m := range msgs {
		if hasDelay(m.Properties) {
			return nil, remoting.NewResponse(req, remoting.RespMessageIllegal, "delayed delivery is not supported for batched messages")
		}
	}
	return msgs, nil
}

// sendResponse builds the answer to a send from the store's results.
func sendResponse(req *remoting.Command, qid int32, res []store.AppendResult, err error) *remoting.Command {
	code, remark := remoting.RespSuccess, ""
	if err != nil {
		code, remark = sendErrorCode(err), err.Error()
	}
	resp := remoting.NewResponse(req, code, remark)
	if len(res) == 0 || (code != remoting.RespSuccess && code != remoting.RespFlushDiskTimeout) {
		return resp
	}
	ids := make([]string, len(res))
	for i, r := range res {
		ids[i] = r.MsgID
	}
	resp.ExtFields["msgId"] = strings.Join(ids, ",")
	resp.ExtFields["queueId"] = strconv.Itoa(int(qid))
	resp.ExtFields["queueOffset"] = strconv.FormatInt(res[0].QueueOffset, 10)
	resp.ExtFields[extMsgRegion] = defaultRegionID
	resp.ExtFields[extTraceSwitch] = "true"
	return resp
}

// sendErrorCode maps a store error to RocketMQ's response code. Nothing that
// failed is ever answered SUCCESS.
func sendErrorCode(err error) int16 {
	switch {
	case errors.Is(err, store.ErrFlushTimeout):
		return remoting.RespFlushDiskTimeout
	case errors.Is(err, store.ErrWriteFailed), errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrSegmentNotReady):
		return remoting.RespServiceNotAvailable
	case errors.Is(err, store.ErrMessageTooLarge), errors.Is(err, store.ErrBadMessage):
		return remoting.RespMessageIllegal
	}
	return remoting.RespSystemError
}

// isTransactionalSend reports a half message: the prepared sysFlag bits or
// TRAN_MSG=true, either of which the clients set for a transactional send.
func isTransactionalSend(h sendHeader) bool {
	if message.TransactionType(h.sysFlag) != message.TransactionNotType {
		return true
	}
	v, _ := message.Property(h.properties, message.PropertyTransactionPrepared)
	ok, _ := strconv.ParseBool(v)
	return ok
}

func hasDelay(props string) bool {
	for _, name := range []string{message.PropertyDelayTimeLevel, message.PropertyTimerDeliverMS, message.PropertyTimerDelayMS, message.PropertyTimerDelaySec} {
		if v, ok := message.Property(props, name); ok && v != "" && v != "0" {
			return true
		}
	}
	return false
}

func (b *Broker) maxMessageSize() int {
	if n := b.opts.Store.MaxMessageSize; n > 0 {
		return n
	}
	return store.DefaultMaxMessageSize
}

// bornHostOf returns the producer's address as a record's born host.
func bornHostOf(conn *remoting.Conn) netip.AddrPort {
	if ta, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
		return ap
	}
	return netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
}

// Batch element layout (MessageDecoder.encodeMessage, the Go client's
// Message.Marshal): totalSize int32 | magic int32 | bodyCRC int32 |
// flag int32 | bodyLen int32 | body | propsLen int16 | properties.
const batchElemFixed = 4 + 4 + 4 + 4 + 4 + 2

// decodeBatch splits a batch body into messages that copy base's header
// fields and carry their own flag, body and properties; the request's
// properties (batchProps) are appended to each where the element lacks them.
func decodeBatch(base message.Message, body []byte, batchProps string) ([]*message.Message, error) {
	var msgs []*message.Message
	for pos := 0; pos < len(body); {
		rest := body[pos:]
		if len(rest) < batchElemFixed {
			return nil, fmt.Errorf("batch message %d is truncated: %d bytes left", len(msgs), len(rest))
		}
		total := int(int32(binary.BigEndian.Uint32(rest)))
		bodyLen := int(int32(binary.BigEndian.Uint32(rest[16:])))
		if bodyLen < 0 || total < batchElemFixed || total > len(rest) || 20+bodyLen+2 > total {
			return nil, fmt.Errorf("batch message %d has inconsistent lengths (total %d, body %d, %d bytes left)", len(msgs), total, bodyLen, len(rest))
		}
		propsLen := int(binary.BigEndian.Uint16(rest[20+bodyLen:]))
		if 20+bodyLen+2+propsLen != total {
			return nil, fmt.Errorf("batch message %d has inconsistent lengths (total %d, body %d, properties %d)", len(msgs), total, bodyLen, propsLen)
		}
		m := base
		m.Flag = int32(binary.BigEndian.Uint32(rest[12:]))
		m.Body = rest[20 : 20+bodyLen]
		m.Properties = mergeProperties(string(rest[22+bodyLen:total]), batchProps)
		msgs = append(msgs, &m)
		pos += total
	}
	if len(msgs) == 0 {
		return nil, errors.New("batch message body holds no message")
	}
	return msgs, nil
}

// mergeProperties appends to props, byte for byte, each pair of extra whose
// name props does not have (a name extra gives twice: its last value).
func mergeProperties(props, extra string) string {
	orig := props
	for extra != "" {
		item := extra
		if i := strings.IndexByte(extra, '\x02'); i >= 0 {
			item, extra = extra[:i], extra[i+1:]
		} else {
			extra = ""
		}
		name, value, ok := strings.Cut(item, "\x01")
		if !ok || name == "" {
			continue
		}
		if _, have := message.Property(orig, name); !have {
			props = message.SetProperty(props, name, value)
		}
	}
	return props
}

// reqHeader reads a request's ext fields, keeping the first error in the
// text RocketMQ's header decoder uses.
type reqHeader struct {
	req *remoting.Command
	err error
}

func (r *reqHeader) str(name string, required bool) string {
	v, ok := r.req.ExtFields[name]
	if required && !ok && r.err == nil {
		r.err = fmt.Errorf("the custom field <%s> is null", name)
	}
	return v
}

func (r *reqHeader) i64(name string, required bool) int64 { return r.num(name, required, 64) }

func (r *reqHeader) i32(name string, required bool) int32 { return int32(r.num(name, required, 32)) }

// num parses a decimal field of the given bit size; an absent optional
// field is 0, an empty required one is an error.
func (r *reqHeader) num(name string, required bool, bits int) int64 {
	v := r.str(name, required)
	if v == "" && !required {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, bits)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("the custom field <%s> is not a %d-bit number: %q", name, bits, v)
	}
	return n
}

func (r *reqHeader) boolean(name string) bool {
	ok, _ := strconv.ParseBool(r.req.ExtFields[name])
	return ok
}
