package lifecycle

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/halfbackmq/halfback/internal/jsonenc"
)

// appendEvent appends e as JSON, as json.Marshal writes it except that
// <, > and & are not escaped (json.Unmarshal reads both the same), without
// reflection: the writer encodes one event per message and more. A time
// json.Marshal refuses (a year outside 0-9999) is left to json.Marshal,
// whose error the caller gets.
func appendEvent(b []byte, e *Event) ([]byte, error) {
	if !marshalable(e.Time) || !e.DueAt.IsZero() && !marshalable(e.DueAt) {
		v, err := json.Marshal(e)
		return append(b, v...), err
	}
	b = append(b, `{"msgId":`...)
	b = jsonenc.AppendString(b, e.MsgID)
	b = append(b, `,"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","event":`...)
	b = jsonenc.AppendString(b, string(e.Kind))
	b = appendString(b, `,"topic":`, e.Topic)
	b = append(b, `,"queue":`...)
	b = strconv.AppendInt(b, int64(e.Queue), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, e.Offset, 10)
	b = appendString(b, `,"offsetMsgId":`, e.OffsetMsgID)
	b = appendString(b, `,"flush":`, e.Flush)
	b = appendInt(b, `,"level":`, e.Level)
	if !e.DueAt.IsZero() {
		b = append(b, `,"dueAt":"`...)
		b = e.DueAt.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = appendString(b, `,"from":`, e.From)
	b = appendInt(b, `,"check":`, e.Check)
	b = appendString(b, `,"group":`, e.Group)
	b = appendInt(b, `,"reconsumeTimes":`, e.Reconsume)
	b = appendString(b, `,"keys":`, e.Keys)
	b = appendString(b, `,"tag":`, e.Tag)
	b = appendString(b, `,"traceId":`, e.TraceID)
	b = appendString(b, `,"detail":`, e.Detail)
	return append(b, '}'), nil
}

// marshalable reports whether time.Time's MarshalJSON accepts t: a year
// of four digits and a zone offset under a day.
func marshalable(t time.Time) bool {
	if y := t.Year(); y < 0 || y > 9999 {
		return false
	}
	_, off := t.Zone()
	return off > -24*3600 && off < 24*3600
}

// appendString appends an omitempty string member.
func appendString(b []byte, name, s string) []byte {
	if s == "" {
		return b
	}
	return jsonenc.AppendString(append(b, name...), s)
}

// appendInt appends an omitempty int member.
func appendInt(b []byte, name string, n int) []byte {
	if n == 0 {
		return b
	}
	return strconv.AppendInt(append(b, name...), int64(n), 10)
}
