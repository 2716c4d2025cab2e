package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// Request-reply (RocketMQ 4.6's RPC messages; ReplyMessageProcessor). A
// requester sends an ordinary message carrying CORRELATION_ID,
// REPLY_TO_CLIENT (its client id) and TTL; the broker stamps every message
// it stores with CLUSTER, its cluster name. The responder builds the reply
// to <cluster>_REPLY_TOPIC from those properties and sends it with
// SEND_REPLY_MESSAGE(_V2). The broker pushes the reply to the requester's
// connection (PUSH_REPLY_MESSAGE_TO_CLIENT), found by the client id its
// producer heartbeats carry, and answers SYSTEM_ERROR when it cannot: no
// such client on this broker, or the push failed. It then stores the reply
// in the reply topic as RocketMQ does by default (storeReplyMessageEnable),
// for the record; the requester has it already.

// ReplyTopic is the topic a cluster's replies are sent to (MixAll's
// REPLY_TOPIC_POSTFIX); every broker has it, with one queue.
func ReplyTopic(cluster string) string { return cluster + "_REPLY_TOPIC" }

// replyPushTimeout bounds a push of a reply to its requester: the
// responder's send waits for it.
const replyPushTimeout = 3 * time.Second

// registerReply handles SEND_REPLY_MESSAGE and SEND_REPLY_MESSAGE_V2.
func (b *Broker) registerReply(mux *remoting.Mux) {
	mux.HandleFunc(remoting.ReqSendReplyMessage, b.handleReply)
	mux.HandleFunc(remoting.ReqSendReplyMessageV2, b.handleReply)
}

// withCluster returns props with CLUSTER set to the broker's cluster, as
// RocketMQ's SendMessageProcessor stamps every message it stores.
func (b *Broker) withCluster(props string) string {
	if v, ok := message.Property(props, message.PropertyCluster); ok && v == b.opts.ClusterName {
		return props
	}
	if !strings.Contains(props, message.PropertyCluster+"\x01") {
		// The common case: append without re-scanning the pairs.
		if props != "" && props[len(props)-1] != '\x02' {
			props += "\x02"
		}
		return props + message.PropertyCluster + "\x01" + b.opts.ClusterName + "\x02"
	}
	return message.SetProperty(props, message.PropertyCluster, b.opts.ClusterName)
}

// errReplyDiskFull is why a reply pushed on a full disk is not stored.
var errReplyDiskFull = errors.New("broker: reply not stored: the disk is full")

func (b *Broker) handleReply(ctx context.Context, conn *remoting.Conn, req *remoting.Command) *remoting.Command {
	h, err := parseSendHeader(req)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	if h.batch {
		return remoting.NewResponse(req, remoting.RespMessageIllegal, "a reply cannot be a batch")
	}
	// Not refused on a full disk: pushed, not stored (below).
	if resp := b.refuseMessage(req, h); resp != nil {
		return resp
	}
	qid, resp := b.sendQueue(req, h)
	if resp != nil {
		return resp
	}
	// A reply is never transactional: a commit type would make the
	// transaction service's replay take it for a commit (txn.txnHalf),
	// a prepared or rollback type would keep it out of its queue.
	m := &message.Message{
		Topic:          h.topic,
		QueueID:        qid,
		Flag:           h.flag,
		SysFlag:        message.WithTransactionType(h.sysFlag, message.TransactionNotType),
		BornTimestamp:  h.bornTimestamp,
		BornHost:       bornHostOf(conn),
		ReconsumeTimes: h.reconsumeTimes,
		Body:           req.Body,
		Properties:     h.properties,
	}
	if err := b.store.Check(m); err != nil {
		return remoting.NewResponse(req, remoting.RespMessageIllegal, err.Error())
	}
	pushErr := b.pushReply(ctx, req, h, m)

	var res []store.AppendResult
	if b.diskFull() {
		// As RocketMQ, whose store refuses it above
		// diskSpaceWarningLevelRatio once it was pushed.
		err = errReplyDiskFull
	} else {
		start := time.Now()
		res, err = b.store.AppendBatch(ctx, []*message.Message{m})
		b.metrics.stored(h.topic, 1, err)
		b.counts.stored(1, err)
		b.traceStored([]*message.Message{m}, res, start, err)
		if err != nil {
			b.opts.Logger.Warn("broker: reply not stored", "topic", h.topic, "err", err)
		}
	}
	if pushErr != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, pushErr.Error())
	}
	if !written(err) {
		// Delivered, not stored: RocketMQ answers such a reply SUCCESS
		// with message id "0".
		resp := remoting.NewResponse(req, remoting.RespSuccess, "")
		resp.ExtFields["msgId"] = "0"
		resp.ExtFields["queueId"] = strconv.Itoa(int(qid))
		resp.ExtFields["queueOffset"] = "0"
		return resp
	}
	return sendResponse(req, qid, res, nil)
}

// pushReply sends the reply m to the connection of the client its
// REPLY_TO_CLIENT names and waits for the client's answer.
func (b *Broker) pushReply(ctx context.Context, req *remoting.Command, h sendHeader, m *message.Message) error {
	clientID, ok := message.Property(m.Properties, message.PropertyReplyToClient)
	if !ok || clientID == "" {
		return errors.New("reply message properties[" + message.PropertyReplyToClient + "] is null")
	}
	target := b.groupTable().producerConnOf(clientID)
	if target == nil {
		return errors.New("push reply message fail, channel of <" + clientID + "> not found.")
	}
	props := message.SetProperty(m.Properties, message.PropertyPushReplyTime, strconv.FormatInt(time.Now().UnixMilli(), 10))
	push := remoting.NewRequest(remoting.ReqPushReplyMessageToClient, map[string]string{
		"producerGroup":         h.producerGroup,
		"topic":                 h.topic,
		"defaultTopic":          req.Ext(sendDefaultTopicField(req.Code)),
		"defaultTopicQueueNums": req.Ext(sendDefaultQueueNumsField(req.Code)),
		"queueId":               strconv.Itoa(int(h.queueID)),
		"sysFlag":               strconv.Itoa(int(h.sysFlag)),
		"bornTimestamp":         strconv.FormatInt(h.bornTimestamp, 10),
		"flag":                  strconv.Itoa(int(h.flag)),
		"properties":            props,
		"reconsumeTimes":        strconv.Itoa(int(h.reconsumeTimes)),
		"unitMode":              strconv.FormatBool(req.Ext(sendUnitModeField(req.Code)) == "true"),
		"bornHost":              m.BornHost.String(),
		"storeHost":             b.opts.Store.StoreHost.String(),
		"storeTimestamp":        strconv.FormatInt(time.Now().UnixMilli(), 10),
	})
	push.Body = m.Body
	ctx, cancel := context.WithTimeout(ctx, replyPushTimeout)
	defer cancel()
	resp, err := target.Invoke(ctx, push)
	if err != nil {
		b.opts.Logger.Warn("broker: push reply message failed", "client", clientID, "err", err)
		return fmt.Errorf("push reply message to %s fail: %w", clientID, err)
	}
	if resp.Code != remoting.RespSuccess {
		return fmt.Errorf("push reply message to %s fail: code %d %s", clientID, resp.Code, resp.Remark)
	}
	return nil
}

// The SendMessageRequestHeader fields handleReply passes on that
// parseSendHeader does not read, by their V1 names or V2 letters.
func sendDefaultTopicField(code int16) string     { return v2Field(code, "defaultTopic", "c") }
func sendDefaultQueueNumsField(code int16) string { return v2Field(code, "defaultTopicQueueNums", "d") }
func sendUnitModeField(code int16) string         { return v2Field(code, "unitMode", "k") }

func v2Field(code int16, v1, v2 string) string {
	if usesV2Header(code) {
		return v2
	}
	return v1
}
