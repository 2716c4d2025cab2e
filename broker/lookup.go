package broker

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// Query limits, RocketMQ's MessageStoreConfig defaults: defaultQueryMaxNum
// (what a unique-key query asks for) and maxMsgsNumBatch (the cap).
const (
	defaultQueryMaxNum = 32
	maxQueryNum        = 64
	// uniqueKeyQueryFlag is MixAll.UNIQUE_MSG_QUERY_FLAG, the request ext
	// field that marks a QUERY_MESSAGE by UNIQ_KEY.
	uniqueKeyQueryFlag = "_UNIQUE_KEY_QUERY"
)

// registerLookup handles offset and message lookups: GET_MAX_OFFSET,
// GET_MIN_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP, GET_EARLIEST_MSG_STORETIME,
// QUERY_MESSAGE and VIEW_MESSAGE_BY_ID.
func (b *Broker) registerLookup(mux *remoting.Mux) {
	mux.HandleFunc(remoting.ReqGetMaxOffset, b.handleGetMaxOffset)
	mux.HandleFunc(remoting.ReqGetMinOffset, b.handleGetMinOffset)
	mux.HandleFunc(remoting.ReqSearchOffsetByTimestamp, b.handleSearchOffset)
	mux.HandleFunc(remoting.ReqGetEarliestMsgStoreTime, b.handleEarliestStoreTime)
	mux.HandleFunc(remoting.ReqQueryMessage, b.handleQueryMessage)
	mux.HandleFunc(remoting.ReqViewMessageByID, b.handleViewMessage)
}

// queueHeader reads the topic and queueId every queue lookup carries.
func queueHeader(r *reqHeader) (string, int32) {
	return r.str("topic", true), r.i32("queueId", true)
}

// offsetResponse answers {"offset": off}, the response header of
// GET_MAX_OFFSET, GET_MIN_OFFSET and SEARCH_OFFSET_BY_TIMESTAMP.
func offsetResponse(req *remoting.Command, off int64) *remoting.Command {
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.ExtFields["offset"] = strconv.FormatInt(off, 10)
	return resp
}

func headerError(req *remoting.Command, err error) *remoting.Command {
	return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
}

// handleGetMaxOffset answers a queue's max offset (one past its last
// message); 0 for an unknown queue, as RocketMQ does.
func (b *Broker) handleGetMaxOffset(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	r := reqHeader{req: req}
	topic, qid := queueHeader(&r)
	if r.err != nil {
		return headerError(req, r.err)
	}
	_, maxOff := b.store.QueueBounds(topic, qid)
	return offsetResponse(req, maxOff)
}

func (b *Broker) handleGetMinOffset(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	r := reqHeader{req: req}
	topic, qid := queueHeader(&r)
	if r.err != nil {
		return headerError(req, r.err)
	}
	minOff, _ := b.store.QueueBounds(topic, qid)
	return offsetResponse(req, minOff)
}

// handleSearchOffset answers the first offset stored at or after timestamp
// (ms), or the queue's max offset if none was.
func (b *Broker) handleSearchOffset(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	r := reqHeader{req: req}
	topic, qid := queueHeader(&r)
	ts := r.i64("timestamp", true)
	if r.err != nil {
		return headerError(req, r.err)
	}
	// boundaryType (RocketMQ 5's SearchOffsetRequestHeader, LOWER when
	// absent, matched case-insensitively as BoundaryType.getType): UPPER
	// asks for the last offset stored at or before timestamp instead.
	upper := strings.EqualFold(req.Ext("boundaryType"), "upper") && ts < math.MaxInt64
	if upper {
		ts++
	}
	off, err := b.store.OffsetForTimestamp(topic, qid, ts)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	if minOff, _ := b.store.QueueBounds(topic, qid); upper && off > minOff {
		off--
	}
	return offsetResponse(req, off)
}

// handleEarliestStoreTime answers {"timestamp": ms} of the queue's oldest
// message, -1 when it holds none (as RocketMQ's getEarliestMessageTime).
func (b *Broker) handleEarliestStoreTime(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	r := reqHeader{req: req}
	topic, qid := queueHeader(&r)
	if r.err != nil {
		return headerError(req, r.err)
	}
	ts, ok := b.earliestStoreTime(topic, qid)
	if !ok {
		ts = -1
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.ExtFields["timestamp"] = strconv.FormatInt(ts, 10)
	return resp
}

func (b *Broker) earliestStoreTime(topic string, qid int32) (int64, bool) {
	minOff, maxOff := b.store.QueueBounds(topic, qid)
	for off := minOff; off < maxOff; {
		r, err := b.store.GetMessages(topic, qid, off, store.GetOptions{MaxMessages: 1})
		if err != nil || r.NextBeginOffset <= off {
			return 0, false
		}
		if r.Status == store.Found {
			return recordStoreTimestamp(r.Records)
		}
		off = r.NextBeginOffset // entries into removed segments
	}
	return 0, false
}

// recordStoreTimestamp reads the store timestamp of the record rec starts with.
func recordStoreTimestamp(rec []byte) (int64, bool) {
	e, _, err := message.Decode(rec)
	if err != nil {
		return 0, false
	}
	return e.StoreTimestamp, true
}

// handleQueryMessage answers the records of topic carrying key (a KEYS
// entry, or the UNIQ_KEY when the unique-key flag is set) stored within
// [beginTimestamp, endTimestamp]: the newest maxNum, and of those the
// newest that fit in one frame (MaxMessageSizeLimit bytes of records),
// listed oldest first as RocketMQ's DefaultMessageStore.queryMessage does
// (a Java client's queryMessageByUniqKey takes the first).
func (b *Broker) handleQueryMessage(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	r := reqHeader{req: req}
	topic := r.str("topic", true)
	key := r.str("key", true)
	maxNum := int(r.i32("maxNum", true))
	begin := r.i64("beginTimestamp", true)
	end := r.i64("endTimestamp", true)
	if r.err != nil {
		return headerError(req, r.err)
	}
	if req.Ext(uniqueKeyQueryFlag) == "true" {
		maxNum = defaultQueryMaxNum
	}
	// RocketMQ finds nothing for these (the store's QueryByKey would take
	// them as its defaults: 32, no upper bound).
	if maxNum <= 0 || end <= 0 {
		return queryNotFound(req)
	}
	maxNum = min(maxNum, maxQueryNum)
	indexed := b.store.DispatchedOffset()
	offs, err := b.store.QueryByKey(topic, key, begin, end, maxNum)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	type found struct {
		off int64
		rec []byte
	}
	var recs []found
	size := 0
	for _, off := range offs { // newest first
		rec, err := b.store.ReadRecord(off)
		if err != nil {
			continue // removed by retention since it was indexed
		}
		if size+len(rec) > MaxMessageSizeLimit {
			// The older ones would not fit in one frame with these.
			// (One record always fits: a message is smaller.)
			break
		}
		size += len(rec)
		recs = append(recs, found{off, rec})
	}
	if len(recs) == 0 {
		return queryNotFound(req)
	}
	slices.SortFunc(recs, func(x, y found) int { return cmp.Compare(x.off, y.off) })
	body := make([]byte, 0, size)
	for _, r := range recs {
		body = append(body, r.rec...)
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.ExtFields["indexLastUpdateTimestamp"] = strconv.FormatInt(time.Now().UnixMilli(), 10)
	resp.ExtFields["indexLastUpdatePhyoffset"] = strconv.FormatInt(indexed, 10)
	resp.Body = body
	return resp
}

// queryNotFound is RocketMQ's answer to a QUERY_MESSAGE that found nothing.
func queryNotFound(req *remoting.Command) *remoting.Command {
	return remoting.NewResponse(req, remoting.RespQueryNotFound, "can not find message, maybe time range not correct")
}

// handleViewMessage answers the record at physical offset "offset" (the
// offset inside an offset message id).
func (b *Broker) handleViewMessage(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	r := reqHeader{req: req}
	off := r.i64("offset", true)
	if r.err != nil {
		return headerError(req, r.err)
	}
	rec, err := b.store.ReadRecord(off)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "can not find message by the offset, "+strconv.FormatInt(off, 10))
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = rec
	return resp
}
