package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// directResult is a consumer's answer to CONSUME_MESSAGE_DIRECTLY, in the
// shape of RocketMQ's ConsumeMessageDirectlyResult as its Java client
// writes it: what the handler made of one message an administration tool
// handed it.
type directResult struct {
	Order      bool `json:"order"`      // the consumer is orderly
	AutoCommit bool `json:"autoCommit"` // always true here, as RocketMQ's default
	// ConsumeResult is a CMResult name: CR_SUCCESS, CR_LATER
	// (ConsumeRetryLater) or CR_THROW_EXCEPTION (an error or a panic,
	// which Remark gives).
	ConsumeResult  string `json:"consumeResult"`
	Remark         string `json:"remark,omitempty"`
	SpentTimeMills int64  `json:"spentTimeMills"` // the handler's time, RocketMQ's spelling
}

// handleConsumeDirectly answers CONSUME_MESSAGE_DIRECTLY (an
// administration tool's, forwarded by the broker with the stored message:
// mqadmin queryMsgById -g GROUP -d CLIENT, `halfback msg consume`): the
// named group's handler for the message's topic is called with it, as
// RocketMQ's consumeMessageDirectly calls its listener, and the result
// comes back. Nothing else happens: no offset moves, nothing is sent back
// to the retry topic, whatever the result.
func (s *consumerSet) handleConsumeDirectly(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	group := req.Ext("consumerGroup")
	pc := s.get(group)
	if pc == nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "The Consumer Group <"+group+"> not exist in this consumer")
	}
	ext, _, err := message.Decode(req.Body)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "the message to consume does not decode: "+err.Error())
	}
	res, err := pc.consumeDirectly(newMessageExt(&ext, pc.log))
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = appendJSON(nil, res)
	return resp
}

// errNoHandler is consumeDirectly's error for a message of a topic the
// group does not subscribe.
var errNoHandler = errors.New("client: the group does not subscribe the message's topic")

// consumeDirectly runs the handler of m's topic on m, with the consumer's
// ConsumeTimeout. A message of the group's retry topic goes to the handler
// of its first topic (RETRY_TOPIC), as RocketMQ's resetRetryAndNamespace
// gives it back, or, as for a pulled one (handlerSubscription), to the
// handler of the group's sole dead-letter subscription when the group does
// not subscribe that topic (the retry of a re-driven dead letter); one of a dead-letter
// topic the group subscribes to goes to that topic's handler. Close waits
// for the call, as for the calls of pulled messages; once Close has begun
// the consumer refuses (ErrClosed).
func (pc *PushConsumer) consumeDirectly(m *MessageExt) (directResult, error) {
	pc.mu.Lock()
	if pc.state != consumerStarted {
		pc.mu.Unlock()
		return directResult{}, fmt.Errorf("%w: consumer of group %s", ErrClosed, pc.opts.Group)
	}
	// Counted while the consumer is started, so that Close (which marks
	// it closed under mu, then waits) waits for the handler too.
	pc.wg.Add(1)
	pc.mu.Unlock()
	defer pc.wg.Done()
	retried := m.Topic == retryTopic(pc.opts.Group)
	if t := m.SystemProperties[message.PropertyRetryTopic]; retried && t != "" {
		m.Topic = t
	}
	var s *subscription
	s, m.Topic = pc.handlerSubscription(m.Topic, retried)
	if s == nil || s.handler == nil {
		return directResult{}, fmt.Errorf("%w: group %s has no handler for topic %s", errNoHandler, pc.opts.Group, m.Topic)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pc.opts.ConsumeTimeout)
	defer cancel()
	start := time.Now()
	res, err := pc.runHandler(ctx, s.handler, m.Topic, []*MessageExt{m}, nil)
	out := directResult{Order: pc.opts.Orderly, AutoCommit: true, SpentTimeMills: time.Since(start).Milliseconds()}
	switch {
	case err != nil:
		out.ConsumeResult, out.Remark = "CR_THROW_EXCEPTION", err.Error()
	case res == ConsumeSuccess:
		out.ConsumeResult = "CR_SUCCESS"
	default:
		out.ConsumeResult = "CR_LATER"
	}
	return out, nil
}
