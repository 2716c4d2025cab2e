package delay

import (
	"fmt"
	"strconv"
	"time"

	"github.com/halfbackmq/halfback/message"
)

// Scheduling properties.
const (
	// propTimerOut records, on a delivered timer message, when it was due (ms).
	propTimerOut = "TIMER_OUT_MS"
	// propLevelDelay records, on a scheduled level message, its level's
	// delay when it was stored (a time.Duration string). RocketMQ fixes a
	// level message's due time then (its schedule queue entry's tag code),
	// so levels changed between restarts do not move it. Delivered copies
	// go without it.
	propLevelDelay = "HB_LEVEL_DELAY"
)

// Prepare turns a message with a delay into its scheduled form, in place,
// and reports whether it is delayed. A DELAY level n > 0 (clamped to the
// highest level) stores it under ScheduleTopic queue n-1, with the level's
// delay now, which is the one it gets (unless the level is shortened
// below what is left of it: see the package doc); TIMER_DELIVER_MS
// (absolute, ms) or TIMER_DELAY_MS / TIMER_DELAY_SEC (relative) store it
// under TimerTopic with TIMER_DELIVER_MS set to the absolute time. Either
// keeps the original topic and queue in REAL_TOPIC and REAL_QID. A level
// <= 0 or a delivery time already past means no delay. A message sent to a
// schedule topic directly must carry REAL_TOPIC.
//
// Prepare checks everything before changing m: on error m is untouched.
// Count the message with Scheduled once it is stored.
func (s *Scheduler) Prepare(m *message.Message) (bool, error) {
	if m.Topic == ScheduleTopic || m.Topic == TimerTopic {
		// Already in scheduled form (an admin re-send): it must say where to go.
		if t, ok := message.Property(m.Properties, message.PropertyRealTopic); !ok || message.ValidateTopic(t) != nil {
			return false, fmt.Errorf("%w: message sent to %s without a valid REAL_TOPIC", ErrNoRealTopic, m.Topic)
		}
		if m.Topic == ScheduleTopic && int(m.QueueID) >= len(s.opts.Levels) {
			return false, fmt.Errorf("%w: %s queue %d is not a delay level", ErrBadDelay, ScheduleTopic, m.QueueID)
		}
		return true, nil
	}
	now := s.opts.Clock.Now()
	if v, ok := message.Property(m.Properties, message.PropertyDelayTimeLevel); ok {
		level, err := strconv.Atoi(v)
		if err != nil {
			return false, fmt.Errorf("%w: DELAY level %q is not a number", ErrBadDelay, v)
		}
		if level > 0 {
			level = min(level, len(s.opts.Levels))
			s.redirect(m, ScheduleTopic, int32(level-1))
			m.Properties = message.SetProperty(m.Properties, message.PropertyDelayTimeLevel, strconv.Itoa(level))
			// Left out when it alone would push the record past the
			// limits: the level's delay at delivery time applies then.
			stamped := message.SetProperty(m.Properties, propLevelDelay, s.opts.Levels[level-1].String())
			if _, err := message.SealableRecordSize(&message.Message{Topic: m.Topic, Properties: stamped, Body: m.Body}); err == nil {
				m.Properties = stamped
			} else {
				m.Properties = message.RemoveProperties(m.Properties, propLevelDelay)
			}
			return true, nil
		}
		// As RocketMQ: a level <= 0 is no level; the timer properties decide.
	}
	due, ok, err := s.deliverTime(m.Properties, now)
	if err != nil || !ok {
		return false, err
	}
	if !due.After(now) {
		m.Properties = message.RemoveProperties(m.Properties, message.PropertyTimerDeliverMS, message.PropertyTimerDelayMS, message.PropertyTimerDelaySec)
		return false, nil
	}
	s.redirect(m, TimerTopic, 0)
	m.Properties = message.RemoveProperties(m.Properties, message.PropertyTimerDelayMS, message.PropertyTimerDelaySec)
	m.Properties = message.SetProperty(m.Properties, message.PropertyTimerDeliverMS, strconv.FormatInt(due.UnixMilli(), 10))
	return true, nil
}

// Scheduled counts the messages among msgs that are in scheduled form
// (Prepare made them so) in Stats.Scheduled. Call it once the store
// acknowledged them: a send the store refused was not scheduled.
func (s *Scheduler) Scheduled(msgs ...*message.Message) {
	for _, m := range msgs {
		switch {
		case m.Topic == ScheduleTopic && int(m.QueueID) < len(s.opts.Levels):
			s.stats.scheduled(int(m.QueueID) + 1)
		case m.Topic == TimerTopic:
			s.stats.scheduled(0)
		}
	}
}

// deliverTime reads the TIMER_* properties; ok is false if there are none.
func (s *Scheduler) deliverTime(props string, now time.Time) (time.Time, bool, error) {
	var due time.Time
	// RocketMQ's precedence (HookUtils.transformTimerMessage): TIMER_DELAY_SEC,
	// then TIMER_DELAY_MS, then TIMER_DELIVER_MS.
	if v, ok := message.Property(props, message.PropertyTimerDelaySec); ok {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil || sec < 0 || sec > int64(s.opts.MaxDelay/time.Second)+1 {
			return due, false, fmt.Errorf("%w: TIMER_DELAY_SEC %q is not a non-negative number within %v", ErrBadDelay, v, s.opts.MaxDelay)
		}
		due = now.Add(time.Duration(sec) * time.Second)
	} else if v, ok := message.Property(props, message.PropertyTimerDelayMS); ok {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 || ms > int64(s.opts.MaxDelay/time.Millisecond)+1 {
			return due, false, fmt.Errorf("%w: TIMER_DELAY_MS %q is not a non-negative number within %v", ErrBadDelay, v, s.opts.MaxDelay)
		}
		due = now.Add(time.Duration(ms) * time.Millisecond)
	} else if v, ok := message.Property(props, message.PropertyTimerDeliverMS); ok {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			return due, false, fmt.Errorf("%w: TIMER_DELIVER_MS %q is not a time in ms", ErrBadDelay, v)
		}
		due = time.UnixMilli(ms)
	} else {
		return due, false, nil
	}
	if due.Sub(now) > s.opts.MaxDelay {
		return due, false, fmt.Errorf("%w: delivery in %v exceeds the maximum delay %v", ErrBadDelay, due.Sub(now).Round(time.Second), s.opts.MaxDelay)
	}
	return due, true, nil
}

func (s *Scheduler) redirect(m *message.Message, topic string, qid int32) {
	m.Properties = message.SetProperty(m.Properties, message.PropertyRealTopic, m.Topic)
	m.Properties = message.SetProperty(m.Properties, message.PropertyRealQueueID, strconv.Itoa(int(m.QueueID)))
	m.Topic, m.QueueID = topic, qid
}

// restore builds the message to deliver from a scheduled record: real topic
// and queue, scheduling properties removed, everything else as it was.
func restore(e *message.Ext, due time.Time) (*message.Message, error) {
	topic, ok := message.Property(e.Properties, message.PropertyRealTopic)
	if !ok || message.ValidateTopic(topic) != nil {
		return nil, fmt.Errorf("%w: record at %d", ErrNoRealTopic, e.CommitLogOffset)
	}
	qid, err := strconv.Atoi(e.Property(message.PropertyRealQueueID))
	if err != nil || qid < 0 {
		return nil, fmt.Errorf("%w: record at %d has REAL_QID %q", ErrNoRealTopic, e.CommitLogOffset, e.Property(message.PropertyRealQueueID))
	}
	m := e.Message
	m.Topic, m.QueueID = topic, int32(qid)
	m.Properties = message.RemoveProperties(e.Properties, message.PropertyDelayTimeLevel, message.PropertyTimerDeliverMS,
		message.PropertyTimerDelayMS, message.PropertyTimerDelaySec, propLevelDelay)
	// The copy must stay storable: without DELAY / TIMER_DELIVER_MS it is
	// never larger than the scheduled record, but TIMER_OUT_MS can push it
	// past the properties limit, and a copy the store refuses would stop
	// every delivery behind it. Then it goes without TIMER_OUT_MS.
	withOut := message.SetProperty(m.Properties, propTimerOut, strconv.FormatInt(due.UnixMilli(), 10))
	if _, err := message.SealableRecordSize(&message.Message{Topic: m.Topic, Properties: withOut, Body: m.Body}); err == nil {
		m.Properties = withOut
	}
	return &m, nil
}
