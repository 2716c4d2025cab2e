// Package lifecycle keeps the broker's record of what happened to each
// message: stored, half stored, committed or rolled back, checked back,
// parked, scheduled, delivered from the schedule, sent back for retry,
// dead-lettered. It answers "what happened to the message for order 42?"
// with no tracing backend.
//
// # Records
//
// Events live in a Pebble database, keyed by the message's id (its
// UNIQ_KEY) and the event time, so one prefix scan returns a message's
// events in order. Secondary keys map each message key (KEYS) and trace id
// (from the traceparent property) to the message ids that carry them.
// One expiry entry per batch the writer commits, keyed by write time,
// lists the keys its events wrote; a pass every [Options.ExpiryInterval] deletes those older
// than [Options.Retention] (a secondary key written again since is kept).
//
// # Writes
//
// [Recorder.Record] never blocks and never touches the disk: it queues the
// event on a channel that one writer goroutine drains in batches, committed
// without fsync. When the queue is full, events are dropped and counted
// ([Recorder.Dropped]): on a busy two-core machine one writer keeps up
// with roughly 250,000 events a second (BenchmarkRecorderWrite: events are
// encoded by hand, not by encoding/json). A crash loses the events still
// queued and, on a machine crash, those not yet synced by Pebble; the
// record is a diagnostic aid, never a source of truth for delivery.
//
// # Consumption
//
// Consumption by a group is not recorded here: the broker derives it when
// it answers a query, from the group's committed offsets (a message is
// consumed by a group once the group's offset for the message's queue has
// passed it).
//
// # Usage
//
//	r, err := lifecycle.Open(lifecycle.Options{Dir: dataDir + "/lifecycle"})
//	r.Record(lifecycle.Event{MsgID: id, Kind: lifecycle.Stored, Topic: "orders"})
//	msgs, err := r.Lookup("order-42", 100)
package lifecycle
