package broker

import (
	"cmp"
	"context"
	"slices"
	"strconv"

	"github.com/halfbackmq/halfback/broker/lifecycle"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// registerTrace handles halfback's MESSAGE_TRACE admin request.
func (b *Broker) registerTrace(mux *remoting.Mux) {
	mux.HandleFunc(remoting.ReqHalfbackMessageTrace, b.handleMessageTrace)
}

// handleMessageTrace answers the lifecycle of the messages ext field id
// names (a message id, an offset message id, a key or a trace id) as a JSON array of
// lifecycle.Message, at most limit (default 100) messages. Each message's
// events end with the derived consumed events (see [Broker.MessageTrace]).
func (b *Broker) handleMessageTrace(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	q := req.Ext("id")
	if q == "" {
		return remoting.NewResponse(req, remoting.RespInvalidParameter, "id is missing")
	}
	limit := 100
	if v := req.Ext("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return remoting.NewResponse(req, remoting.RespInvalidParameter, "limit "+strconv.Quote(v)+" is not a positive number")
		}
		limit = n
	}
	msgs, err := b.MessageTrace(q, limit)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	if len(msgs) == 0 {
		return remoting.NewResponse(req, remoting.RespQueryNotFound, "no message with id, key or trace id "+strconv.Quote(q))
	}
	return jsonResponse(req, msgs)
}

// MessageTrace returns the lifecycle of the messages q names (message id,
// offset message id, key or trace id), each message's events oldest first, followed by one
// Consumed event per consumer group whose committed offset has passed a
// record of the message (its store, its delivery from the schedule, a
// retry's delivery, its dead letter).
//
// Consumption is derived here, when asked, instead of written as events:
// a consumer commits offsets, not message ids, so an event per message
// would cost a consume-queue and commit-log read for every committed
// range on the consume path, and a write per message per group. Derived
// from offsets it costs nothing until someone asks; the price is that a
// Consumed event has no time (its Time is zero), and an offset reset
// backwards makes a message look unconsumed again.
func (b *Broker) MessageTrace(q string, limit int) ([]lifecycle.Message, error) {
	if b.life == nil {
		return nil, nil
	}
	if err := b.life.Sync(); err != nil {
		return nil, err
	}
	msgs, err := b.life.Lookup(q, limit)
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		// An offset message id (what a send prints beside the message id):
		// the record there names the message.
		if _, phys, perr := message.ParseOffsetMsgID(q); perr == nil {
			if e, rerr := b.store.ReadMessage(phys); rerr == nil {
				id := uniqOrOrigin(e.Properties)
				if u, _ := message.Property(e.Properties, message.PropertyUniqKey); u == "" {
					// A committed message with no UNIQ_KEY, or a copy of
					// one: its events are its half record's (traceEnd,
					// nameCopy).
					id = b.halfIDOf(cmp.Or(id, q))
				}
				if id != "" && id != q {
					if msgs, err = b.life.Lookup(id, limit); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	byTopic := map[string]map[string]map[int32]int64{}
	for i := range msgs {
		msgs[i].Events = append(msgs[i].Events, b.consumedEvents(msgs[i], byTopic)...)
	}
	return msgs, nil
}

// consumedEvents derives a message's Consumed events from the committed
// offsets; byTopic caches the offsets per topic.
func (b *Broker) consumedEvents(m lifecycle.Message, byTopic map[string]map[string]map[int32]int64) []lifecycle.Event {
	var out []lifecycle.Event
	seen := map[string]bool{}
	for _, e := range m.Events {
		switch e.Kind {
		case lifecycle.Stored, lifecycle.Delivered, lifecycle.DeadLettered:
		default:
			continue
		}
		if !b.recordStillAt(e) {
			continue // its topic was deleted: the offsets are another topic's
		}
		groups, ok := byTopic[e.Topic]
		if !ok {
			groups = b.offsetTable().topic(e.Topic)
			byTopic[e.Topic] = groups
		}
		names := make([]string, 0, len(groups))
		for g := range groups {
			names = append(names, g)
		}
		slices.Sort(names)
		for _, g := range names {
			off, ok := groups[g][e.Queue]
			// One record: the same offset of another queue is another one.
			key := g + "\x00" + e.Topic + "\x00" + strconv.Itoa(int(e.Queue)) + "\x00" + strconv.FormatInt(e.Offset, 10)
			if !ok || off <= e.Offset || seen[key] {
				continue
			}
			seen[key] = true
			kind, detail := lifecycle.Consumed, "committed offset "+strconv.FormatInt(off, 10)+" is past it"
			if b.filteredOut(g, e) {
				kind, detail = lifecycle.Filtered, detail+"; the group's subscription filters it out, it never got it"
			}
			out = append(out, lifecycle.Event{MsgID: m.MsgID, Kind: kind, Group: g, Topic: e.Topic, Queue: e.Queue,
				Offset: e.Offset, Detail: detail})
		}
	}
	return out
}

// recordStillAt reports whether e's record is still the one at e's queue
// offset. A topic deleted and created again starts at offset 0, and the
// new topic's committed offsets say nothing of the old one's messages.
// When the entry is gone (retention) or e names no record, it is assumed.
func (b *Broker) recordStillAt(e lifecycle.Event) bool {
	_, phys, err := message.ParseOffsetMsgID(e.OffsetMsgID)
	if err != nil {
		return true
	}
	lo, hi := b.store.QueueBounds(e.Topic, e.Queue)
	if e.Offset < lo {
		return true
	}
	if e.Offset >= hi {
		return false
	}
	g, err := b.store.GetMessages(e.Topic, e.Queue, e.Offset, store.GetOptions{MaxMessages: 1})
	if err != nil || g.Count == 0 {
		return true
	}
	rec, _, err := message.Decode(g.Records)
	if err != nil {
		return true
	}
	return rec.CommitLogOffset == phys
}

// filteredOut reports whether online group g's subscription to e's topic
// skips the message of e (RocketMQ's CONSUMED_BUT_FILTERED): its tag
// expression, or its SQL92 expression evaluated on the stored message's
// properties. A group the broker does not know now, one filtering by
// class, or a message it cannot read is assumed to have been taken.
func (b *Broker) filteredOut(g string, e lifecycle.Event) bool {
	sub, ok := b.groupSubscription(g, e.Topic)
	switch {
	case !ok || sub.ClassFilterMode:
		return false
	case isTagType(sub.ExpressionType):
		match := tagMatcher(sub.SubString)
		return match != nil && !match(message.TagsCode(e.Tag))
	case !b.filterSupported(sub.ExpressionType):
		return false // its pulls are refused: it took nothing, filtered nothing
	}
	expr, err := b.filters.compile(sub.SubString)
	if err != nil {
		return false
	}
	_, phys, err := message.ParseOffsetMsgID(e.OffsetMsgID)
	if err != nil {
		return false
	}
	m, err := b.store.ReadMessage(phys)
	return err == nil && !propertyFilter(expr)(m.Properties)
}
