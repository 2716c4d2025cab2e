// Package delay schedules delayed messages on top of the store and delivers
// them to their real topics when they fall due.
//
// # Two kinds of delay
//
// Delay levels are RocketMQ's: a message whose DELAY property is level n
// (1-based, clamped to the highest level; n <= 0 means no delay) is stored
// under [ScheduleTopic] queue n-1 with its topic and queue kept in
// REAL_TOPIC and REAL_QID. Every message of a level has the same delay, so a
// level's queue is in due-time order and one cursor per level is all the
// state it needs. Should the clock step back between two stores, a level is
// still delivered strictly in queue order, as RocketMQ does: a message not
// yet due holds back the ones behind it. As in RocketMQ, a message gets the
// delay its level had when it was stored (Options.Levels changed on a
// restart does not move it), but one due later than its level's current
// delay from now is due at once.
//
// Arbitrary delivery times are RocketMQ 5's timer properties:
// TIMER_DELIVER_MS (absolute, epoch ms), TIMER_DELAY_MS or TIMER_DELAY_SEC
// (relative), up to Options.MaxDelay (default 3 days); with more than one,
// TIMER_DELAY_SEC wins, then TIMER_DELAY_MS (RocketMQ's order), and a DELAY
// level above 0 wins over all of them. Such messages are
// stored under [TimerTopic] and indexed by (due time, commit-log offset) in a
// Pebble database, whose ordered keys make "everything due by now" one
// prefix-free range scan. A timing wheel was the alternative: it needs a
// slot-sized structure per tick, rolls over for delays longer than the
// wheel, and still needs a durable log beside it; an ordered LSM index is
// durable by itself, costs one small write per scheduled message, and reads
// a burst of same-due messages as one sequential scan.
//
// # Delivery
//
// Each round collects what is due from every level and from the timer index,
// merges it by due time (ties keep store order), and writes it to the real
// topics in batches of Options.BatchSize through the store's AppendBatch,
// which is one group commit per batch. A burst of messages falling due at
// the same moment is therefore drained at the store's batched write speed,
// not one message per tick. The scheduler sleeps until the earliest known
// due time or until [Scheduler.Notify] reports new scheduled messages.
// Delivered messages lose the DELAY and TIMER_* properties (and the
// scheduler's own HB_LEVEL_DELAY), keep everything else byte for byte
// (UNIQ_KEY, so the message id stays the same; traceparent), and gain
// TIMER_OUT_MS, the time they were due.
//
// # Durability
//
// Scheduled messages live in the commit log, so an acknowledged one is never
// lost. The scheduler's progress (the per-level cursors and the last
// delivered timer) is written every Options.CheckpointInterval (default 1 s)
// after the timer index is synced, and also as soon as the backlog a start
// finds due is delivered (so that a broker crashing again and again does
// not deliver that backlog on every start). After a crash, delivery
// resumes from the last checkpoint: a message is delivered at least once,
// and only messages delivered within the last checkpoint interval before
// the crash can be delivered twice. The timer index records, in the same batch as its
// entries, how far it has indexed [TimerTopic], so it rebuilds exactly what a
// crash lost. Its writes are not synced one by one, so under ASYNC_FLUSH an
// OS crash can keep entries whose commit-log records it lost (and whose
// offsets later records reuse): New drops the entries past the end of the
// [TimerTopic] queue it finds and indexes again from there.
//
// # Usage
//
//	sched, err := delay.New(st, delay.Options{Dir: dir})
//	sched.Start()                    // and store.Options.OnDispatch calls sched.Notify(topic)
//	delayed, err := sched.Prepare(m) // before st.Append(ctx, m)
//	defer sched.Close()
package delay
