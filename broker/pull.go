package broker

import (
	"context"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// Pull request sysFlag bits (RocketMQ's PullSysFlag).
const (
	pullFlagCommitOffset = 1 << 0
	pullFlagSuspend      = 1 << 1
	pullFlagSubscription = 1 << 2
	pullFlagClassFilter  = 1 << 3
)

// Flow control of one pull, RocketMQ's MessageStoreConfig defaults for
// messages in memory (maxTransferCountOnMessageInMemory 32,
// maxTransferBytesOnMessageInMemory 256 KiB). A single message larger than
// the byte limit (up to MaxMessageSize) is still returned on its own.
const (
	maxPullMessages = 32
	maxPullBytes    = 256 << 10
)

// pullRequest is PullMessageRequestHeader, parsed.
type pullRequest struct {
	group        string
	topic        string
	queueID      int32
	offset       int64
	maxMessages  int
	sysFlag      int32
	commitOffset int64
	suspend      time.Duration
	// match filters by tag hash code; nil accepts every message.
	match func(tagsCode int64) bool
	// filter filters by properties (a SQL92 subscription); nil accepts
	// every message.
	filter func(properties string) bool
}

// registerPull handles PULL_MESSAGE, with long polling (longpoll.go).
func (b *Broker) registerPull(mux *remoting.Mux) {
	h := b.pulls
	b.onDispatchHook(h.notify)
	mux.HandleFunc(remoting.ReqPullMessage, func(_ context.Context, conn *remoting.Conn, req *remoting.Command) *remoting.Command {
		return b.handlePull(h, conn, req)
	})
}

func (b *Broker) handlePull(h *pullHolder, conn *remoting.Conn, req *remoting.Command) *remoting.Command {
	pr, resp := b.parsePull(req)
	if resp != nil {
		return resp
	}
	resp, reset := b.resetPull(req, pr)
	if resp != nil {
		return resp
	}
	resp = b.pullOnce(req, pr)
	// As PullMessageProcessor: a pull that reached the store commits the
	// offset it carries, on its first run only, unless it met a reset
	// (the offset it carries predates it).
	if pr.sysFlag&pullFlagCommitOffset != 0 && isPullOutcome(resp.Code) && !reset {
		b.commitOffsetFromPull(pr.group, pr.topic, pr.queueID, pr.commitOffset)
	}
	if resp.Code == remoting.RespPullNotFound && pr.sysFlag&pullFlagSuspend != 0 {
		if wait := min(pr.suspend, b.opts.LongPollTimeout); wait > 0 {
			switch {
			case h.hold(conn, req, pr, wait):
				resp = nil // answered later by the holder
			case h.isClosed():
				resp = shuttingDown(req)
			}
		}
	}
	return resp
}

// isPullOutcome reports a response code that means the store was read.
func isPullOutcome(code int16) bool {
	switch code {
	case remoting.RespSuccess, remoting.RespPullNotFound, remoting.RespPullRetryImmediately, remoting.RespPullOffsetMoved:
		return true
	}
	return false
}

// parsePull reads a pull header; a non-nil response is the refusal.
func (b *Broker) parsePull(req *remoting.Command) (pullRequest, *remoting.Command) {
	r := reqHeader{req: req}
	pr := pullRequest{
		group:       r.str("consumerGroup", true),
		topic:       r.str("topic", true),
		queueID:     r.i32("queueId", true),
		offset:      r.i64("queueOffset", true),
		maxMessages: int(r.i32("maxMsgNums", true)),
		sysFlag:     r.i32("sysFlag", true),
	}
	// The offset to commit is needed when the commit flag asks for it: 0
	// would send the group back to the queue's start.
	pr.commitOffset = r.i64("commitOffset", pr.sysFlag&pullFlagCommitOffset != 0)
	// Milliseconds past what a Duration holds ask for the longest hold
	// (they overflowed to a wait of any sign).
	ms := min(max(r.i64("suspendTimeoutMillis", false), 0), int64(math.MaxInt64/time.Millisecond))
	pr.suspend = time.Duration(ms) * time.Millisecond
	subVersion := r.i64("subVersion", false)
	if r.err != nil {
		return pr, remoting.NewResponse(req, remoting.RespSystemError, r.err.Error())
	}
	// As SubscriptionGroupManager.findSubscriptionGroupConfig: a group no
	// client may name has no subscription group, and never an offset.
	if err := message.ValidateGroup(pr.group); err != nil {
		return pr, remoting.NewResponse(req, remoting.RespSubscriptionGroupNotExist,
			"subscription group ["+pr.group+"] does not exist, "+err.Error())
	}
	if resp := b.pullGroupRefusal(req, pr.group); resp != nil {
		return pr, resp
	}
	if pr.maxMessages <= 0 || pr.maxMessages > maxPullMessages {
		pr.maxMessages = maxPullMessages
	}
	expr, exprType := req.Ext("subscription"), req.Ext("expressionType")
	classFilter := pr.sysFlag&pullFlagClassFilter != 0
	if pr.sysFlag&pullFlagSubscription == 0 {
		// The consumer relies on the subscription its heartbeat registered.
		// A group the broker does not know yet matches every tag (the
		// clients filter by tag again) rather than failing the pull.
		expr, exprType = "*", ""
		if sub, ok := b.groupSubscription(pr.group, pr.topic); ok {
			// As PullMessageProcessor: a consumer that changed its
			// subscription after the last heartbeat the broker has waits
			// for the next one, rather than being filtered with the old.
			if sub.SubVersion < subVersion {
				return pr, remoting.NewResponse(req, remoting.RespSubscriptionNotLatest, "the consumer's subscription not latest")
			}
			expr, exprType, classFilter = sub.SubString, sub.ExpressionType, sub.ClassFilterMode
		}
	}
	switch {
	case classFilter:
	case isTagType(exprType):
		pr.match = tagMatcher(expr)
	default:
		if resp := b.filterRefusal(req, exprType); resp != nil {
			return pr, resp
		}
		e, err := b.filters.compile(expr)
		if err != nil {
			return pr, remoting.NewResponse(req, remoting.RespSubscriptionParseFailed, "parse the consumer's subscription failed: "+err.Error())
		}
		pr.filter = propertyFilter(e)
	}
	return pr, nil
}

// tagMatcher builds the consume-queue filter of a tag expression: "*" or
// empty accepts everything, "a || b" the hash codes of a and b.
func tagMatcher(expr string) func(int64) bool {
	expr = strings.TrimSpace(expr)
	if expr == "" || expr == "*" {
		return nil
	}
	codes := make(map[int64]struct{})
	for _, tag := range strings.Split(expr, "||") {
		if tag = strings.TrimSpace(tag); tag != "" {
			codes[message.TagsCode(tag)] = struct{}{}
		}
	}
	if len(codes) == 0 {
		return nil
	}
	return func(code int64) bool {
		_, ok := codes[code]
		return ok
	}
}

// pullOnce reads what a pull asks for and maps the store's status to
// RocketMQ's response code as PullMessageProcessor does.
func (b *Broker) pullOnce(req *remoting.Command, pr pullRequest) *remoting.Command {
	tc, ok := b.topics.get(pr.topic)
	switch {
	case !ok:
		return remoting.NewResponse(req, remoting.RespTopicNotExist, "topic["+pr.topic+"] not exist, apply first please!")
	case tc.Perm&PermRead == 0:
		return remoting.NewResponse(req, remoting.RespNoPermission, "the topic["+pr.topic+"] pulling message is forbidden")
	case pr.queueID < 0 || int(pr.queueID) >= tc.ReadQueueNums:
		return remoting.NewResponse(req, remoting.RespSystemError,
			"queueId["+strconv.Itoa(int(pr.queueID))+"] is illegal, topic:["+pr.topic+"] topicConfig.readQueueNums:["+strconv.Itoa(tc.ReadQueueNums)+"]")
	}
	r, err := b.store.GetMessages(pr.topic, pr.queueID, pr.offset,
		store.GetOptions{MaxMessages: pr.maxMessages, MaxBytes: maxPullBytes, Match: pr.match, Filter: pr.filter})
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "store getMessage failed: "+err.Error())
	}
	resp := remoting.NewResponse(req, pullCode(r.Status, pr.offset), r.Status.String())
	setPullOffsets(resp, r.NextBeginOffset, r.MinOffset, r.MaxOffset)
	b.metrics.pulled(pr.topic, pr.group, r.Count)
	b.counts.got.Add(int64(r.Count))
	if r.Status == store.Found {
		resp.Body = r.Records
	}
	return resp
}

// pullCode is PullMessageProcessor's mapping of a GetMessageResult status.
func pullCode(s store.GetStatus, offset int64) int16 {
	switch s {
	case store.Found:
		return remoting.RespSuccess
	case store.NoMatchedMessage, store.MessageWasRemoving:
		// MessageWasRemoving (as RocketMQ's PullMessageProcessor): the
		// entries read point into segments retention removed (their queue
		// is trimmed next). The reader goes on past them at once; not
		// PULL_NOT_FOUND, which would hold a suspended pull for the long
		// poll, once for every batch of such entries.
		return remoting.RespPullRetryImmediately
	case store.NoMatchedLogicQueue, store.NoMessageInQueue:
		if offset != 0 {
			return remoting.RespPullOffsetMoved
		}
		return remoting.RespPullNotFound
	case store.OffsetOverflowBadly, store.OffsetTooSmall:
		return remoting.RespPullOffsetMoved
	}
	return remoting.RespPullNotFound // OffsetOverflowOne
}

// setPullOffsets writes PullMessageResponseHeader's fields.
func setPullOffsets(resp *remoting.Command, next, minOff, maxOff int64) {
	resp.ExtFields["nextBeginOffset"] = strconv.FormatInt(next, 10)
	resp.ExtFields["minOffset"] = strconv.FormatInt(minOff, 10)
	resp.ExtFields["maxOffset"] = strconv.FormatInt(maxOff, 10)
	resp.ExtFields["suggestWhichBrokerId"] = "0" // MixAll.MASTER_ID
}
