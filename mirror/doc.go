// Package mirror copies the committed messages of selected RocketMQ topics
// to Kafka, for downstream consumers that read Kafka.
//
// A [Mirror] is a consumer group of its own (Options.Group, default
// halfback-mirror-kafka) of the halfback broker, reading each mirrored
// topic's queues in order with the halfback client (orderly clustering
// consumption, so several mirrors share the queues and one takes over when
// another stops). It sees exactly what a consumer sees: a transactional
// message once committed (never a half or rolled-back one), a delayed
// message once due. Each handler call takes a batch of one queue and
// produces it to Kafka with github.com/IBM/sarama's idempotent producer,
// acks=all; only when Kafka has acknowledged every record is the batch
// acknowledged, and the queue's offset committed to the broker, durably
// (client.ConsumerOptions.SyncCommit), before the queue's next batch; a
// failed commit is retried before the queue goes on. So a crash of the
// mirror, of the broker or of Kafka loses nothing, and the records a
// restart sends twice are at most the batches that were in flight, one per
// queue; every record carries the RocketMQ message id (header
// rocketmq.msgId) to tell them apart. A batch whose queue a rebalance
// gives to another mirror is abandoned, uncommitted, for the new owner.
//
// A record's key is the message's sharding key, or its first key (KEYS)
// when it has none, so one order's events, produced to one queue, stay in
// order in one Kafka partition (sarama's murmur2 partitioner, as Kafka's
// Java client). One exception: when Kafka
// refuses requests for longer than sarama's own retries (about 2.5 s) and
// then takes them again, sarama may have given up on a key's first records
// and stored later ones; the mirror then sends the key's records again
// from the first one missing, so every record arrives and the last copy
// of each is in order, after duplicates (same rocketmq.msgId). Its value is
// the body, its timestamp the time the broker stored the message, and its
// headers carry the message's properties under their own names, plus
// rocketmq.topic, rocketmq.tags, rocketmq.msgId, rocketmq.offsetMsgId,
// rocketmq.queueId, rocketmq.queueOffset and rocketmq.bornTimestamp, and
// the W3C traceparent of the mirror's publish span, a child of the
// message's own trace, so a Kafka consumer continues the same trace.
//
// When Kafka is unreachable or refuses a batch, the mirror keeps the batch
// and retries it with exponential back-off (Options.MinBackoff to
// MaxBackoff), on the same producer unless the producer is broken
// (fenced, out of sequence). (Idempotence drops a copy Kafka already
// stored only within sarama's own retries of a request; a record Kafka
// stored but did not acknowledge before sarama gave up arrives twice,
// with the same rocketmq.msgId.) The queue's pulls stop once it holds two
// batches (2 × Options.BatchSize messages), the group's lag grows on the broker (halfback mirror
// status, and the broker's consumer lag metric), and the broker keeps
// serving everyone else; so too while a mapped Kafka topic does not
// exist (auto-creation off) or refuses the mirror (authorization). A
// record Kafka can never take (larger than Kafka.MaxMessageBytes, or than
// the topic's max.message.bytes or segment.bytes, say) is logged with its
// message id, counted as rejected and skipped: it stays in RocketMQ. (Kafka
// refuses a whole record batch, which may hold other queues' records too,
// so a record is skipped only once Kafka refused it sent alone, on a
// producer of its own.) A record Kafka refuses for
// its timestamp (the store time, outside the topic's timestamp window after
// a long outage) is sent again stamped with the time of sending, the store
// time in the rocketmq.storeTimestamp header. Close waits for the answer
// to a request Kafka holds, at most Kafka.ProduceTimeout, so that the
// queue's next owner does not send the key's records before it lands;
// past that (a hung Kafka) the batch is given up, unacknowledged, and its
// records, should Kafka still store them, may come after the next owner's
// copies: then a key's last copies are out of order.
package mirror
