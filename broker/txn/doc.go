// Package txn keeps RocketMQ transactional (half) messages: it stores a
// half message where consumers cannot see it, records the producer's
// commit or rollback exactly once, checks back with the producer group
// when no outcome arrives, and parks what is never resolved.
//
// # Records
//
// Every change of a transaction is exactly one commit-log record, written
// through the store, so a crash can never leave half of an outcome:
//
//   - the half message: topic [HalfTopic], queue 0, with the real topic and
//     queue in REAL_TOPIC / REAL_QID and the producer group in PGROUP;
//   - a commit: the message itself in its real topic, with the commit
//     transaction type in its sysFlag and the half record's commit-log
//     offset as its preparedTransactionOffset (as RocketMQ writes it);
//   - a rollback or an admin resume: a small record in [OpTopic] whose tag
//     says which and whose body is the half record's offset;
//   - parking after [Options.CheckMax] checks: a copy of the half message
//     in [CheckMaxTopic], carrying the half offset in [PropertyHalfOffset];
//   - a move ([Service.MoveBelow], when the store's retention is due to
//     remove the segment holding an open transaction's message): the same
//     copy, also marked [PropertyMoved], which leaves the status as it was.
//
// # State
//
// The state of each transaction (pending, parked, committed, rolled back,
// the check count and the next check time) lives in a Pebble database in
// Options.Dir, keyed by the half record's offset: live transactions under
// one prefix (loaded into memory at start, so checks never read disk) and
// resolved ones under another (so a repeated END_TRANSACTION is answered
// from the recorded outcome, and never writes the message twice). Pebble
// writes are not synced one by one; every CheckpointInterval the service
// syncs them together with "covered", the commit-log offset below which
// every transaction record is reflected. On start the service replays the
// commit log from covered with [store.Store.Scan]; replaying a record is
// idempotent, so after a crash the state is exact.
//
// The state follows a record if and only if the store stored it. A caller
// that stops waiting (its context ends, or a SYNC_FLUSH append times out
// with store.ErrFlushTimeout) gets the error, but the record stays queued:
// the service waits on for the store's answer in the background and
// applies the record only once it is durable. Until then the transaction
// takes no other outcome (a repeated END_TRANSACTION waits, as does one
// for a half message whose send was answered FLUSH_DISK_TIMEOUT), its message
// stays where it was for [Service.Lowest], and covered stays below the
// record.
//
// Under ASYNC_FLUSH an OS crash can keep a Pebble write and lose the
// commit-log record it follows. So a change a record made (a half message,
// a commit, a rollback, a resume) is written with a note of the record's
// offset, kept until a checkpoint covers it, and on start a change whose
// noted record the replay does not meet is undone: a lost half message is
// forgotten, and a transaction whose outcome or resume is lost is pending
// again, its checks reset and due at once, so that check-back asks the
// producer again. Copies (parking, moving) are applied only once durable.
//
// # Check-back
//
// A pending half message is first checked Options.Timeout after it was
// stored (or after its CHECK_IMMUNITY_TIME_IN_SECONDS, if longer), then
// every Options.CheckInterval, through [Checker] (the broker sends
// CHECK_TRANSACTION_STATE to a live connection of the producer group).
// Only checks that reached a producer count: immunity and an offline
// producer group burn none. After CheckMax counted checks the message is
// parked: kept, listed by [Service.List], never checked again until
// [Service.Resume] — and still resolvable by a late END_TRANSACTION.
//
// A check costs no commit-log bytes at all (RocketMQ appends the whole
// half message again on every check): it rewrites one Pebble entry of
// about 100 bytes plus the topic and key lengths, which compaction folds
// into a single version. A pending transaction therefore costs its half
// record once, one state entry, and nothing per check.
//
// # Usage
//
//	svc, err := txn.Open(st, txn.Options{Dir: dir + "/txn", Checker: checker})
//	res, err := svc.SendHalf(ctx, msg, "order-producers")
//	out, err := svc.End(ctx, txn.EndRequest{Group: "order-producers",
//		HalfOffset: res.PhysicalOffset, QueueOffset: res.QueueOffset, Outcome: txn.Commit})
package txn
