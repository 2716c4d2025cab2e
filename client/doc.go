// Package client is halfback's own Go client for RocketMQ's remoting
// protocol: a producer with retries, batches, delays and ordered sends, and
// phase-separated transactions whose receipt can be ended by any process of
// the producer group. It is tested against halfback's name server and
// broker, and keeps to the wire format of Apache RocketMQ's (whose route
// JSON, with unquoted integer keys, it accepts).
//
// # Client
//
// A [Client] holds what its producers and consumers share: topic routes
// from the name servers (GET_ROUTEINFO_BY_TOPIC, cached and refreshed
// every [Options].RouteRefreshInterval while in use; a broker's master is
// broker id 0),
// one connection per server address (dialled again after it closes), the
// heartbeat that tells brokers the client's groups (HEART_BEAT every
// [Options].HeartbeatInterval and promptly on a change), and the handlers
// of requests brokers send to clients. Every call takes a context; each
// request is bounded by [Options].RequestTimeout as well. [Client.Close]
// returns once every goroutine the client started has ended. Requests
// carry RocketMQ's binary header encoding (ROCKETMQ, RocketMQSerializable,
// as a Java client started with rocketmq.serialize.type=ROCKETMQ), which
// RocketMQ's servers and halfback's decode beside JSON and answer in
// kind: a quarter of JSON's cost to encode and decode on both sides.
//
// # Producing
//
// [Producer.Send] stores one [Message] (SEND_MESSAGE_V2) and returns a
// [SendResult]; [Producer.SendBatch] stores several of one topic in one
// request (SEND_BATCH_MESSAGE). Each message gets a client-side id,
// UNIQ_KEY, in RocketMQ's shape ([SendResult].MsgID), kept across retries.
// A [QueueSelector] picks the queue: by default round-robin, or by the hash
// of [Message].ShardingKey for ordered sends. A transport failure or a
// retryable response code (SYSTEM_BUSY, SYSTEM_ERROR,
// SERVICE_NOT_AVAILABLE, TOPIC_NOT_EXIST, NO_PERMISSION) is retried on
// another queue, of another broker when there is one,
// [ProducerOptions].RetryTimes times (2); a topic the name servers have no
// route for, or none with a writable queue, fails at once with
// [ErrTopicNotFound]. DelayLevel (the broker's delay levels) and DeliverAt
// (an arbitrary time) delay delivery.
//
// # Transactions
//
// [Producer.SendHalf] stores a half message, invisible to consumers, and
// returns a [HalfReceipt]: a small JSON-serialisable struct naming the
// broker, offsets and ids of the half message. [Producer.EndTransaction]
// with [Commit] makes the message visible, with [Rollback] discards it; it
// waits for the broker to record the outcome, is idempotent, and reports
// [ErrTransactionConflict] when the other outcome was recorded first. The
// receipt may cross process boundaries (a Temporal activity payload): any
// producer of the same group can end the transaction. A half message nobody
// ends is checked back by the broker; a producer created with
// [ProducerOptions].CheckListener answers with [Commit], [Rollback] or
// [Unknown] (ask again later).
//
// # Consuming
//
// [Client.NewPushConsumer] makes a push consumer of a group: in
// [Clustering] mode the group's members share the subscribed topics'
// queues (RocketMQ's average allocation, rebalanced when membership
// changes) and the broker keeps the group's offsets; in [Broadcasting]
// mode every member gets every message and keeps its offsets in a file
// ([ConsumerOptions].OffsetFile, by default named by the client's IP and
// instance name, DEFAULT unless [Options].InstanceName is set, so that a
// restarted member resumes where it stopped).
// A message is acknowledged only after its handler returned
// [ConsumeSuccess]; an error, a panic or [ConsumeRetryLater] sends it back
// (CONSUMER_SEND_MSG_BACK) to come again through %RETRY%<group>, until
// [ConsumerOptions].MaxReconsumeTimes sends it to %DLQ%<group>; if the
// broker refuses the send-back (the record's segment was removed, say),
// the client sends the same copy to %RETRY%<group> itself, as RocketMQ's
// Java client does
// (Broadcasting members, which read no retry topic, retry it in place that
// often and then drop it with a warning; orderly ones dead-letter it as
// below, each its own copy). A committed offset never passes
// a message still in a handler. Orderly consumers lock their queues on the
// broker and call the handler once at a time per queue, retrying a failing
// message in place until its ReconsumeTimes (the stored count plus the
// retries here) reaches MaxReconsumeTimes, then sending it to %DLQ%<group>;
// a member whose lock renewal the broker refuses stops consuming that queue
// at once, and one whose broker cannot be reached asks for the lock again
// shortly (10 ms, doubling to 1 s) until it is granted. Bodies the producer compressed
// (sysFlag bit 0, as the Java and Go clients do over 4 KiB) arrive
// inflated. Offsets are committed every
// PersistInterval; with [ConsumerOptions].SyncCommit a queue's offset is
// committed after every handler call, and a halfback broker writes it to
// disk before answering, so a crash replays at most the calls in flight
// when one call at a time runs per queue (Orderly, as the Kafka mirror
// consumes, or Concurrency 1).
//
// # Tracing
//
// The client makes OpenTelemetry spans through the global tracer provider
// (instrumentation name [TracerName]; nothing is recorded, and no
// attribute built, unless the application installed an SDK), following
// the messaging semantic conventions with messaging.system rocketmq:
// "send <topic>" (Producer) around Send, SendHalf and SendBatch, whose
// context goes into the messages' traceparent and tracestate properties;
// "settle <topic>" (Client) around EndTransaction; "check <topic>"
// (Consumer) around a check-back, a child of the half message's trace;
// "process <topic>" (Consumer) around a push consumer's handler call, a
// child of the producer's span for one message, linked to each message's
// for a batch. The span is in the ctx given to the handler and the check
// listener. A send continues the trace of its ctx, or else of a
// traceparent the caller put in Message.Properties.
//
// # Errors
//
// Invalid input fails before anything is sent ([ErrInvalidMessage],
// [ErrMessageTooLarge]). Refusals are [*BrokerError] or a sentinel.
// [IsRetryable] separates errors worth retrying (transport failures,
// timeouts, a busy broker) from permanent ones.
//
// # Usage
//
//	c, err := client.New(client.Options{NamesrvAddrs: []string{"127.0.0.1:9876"}})
//	defer c.Close()
//	p, err := c.NewProducer(client.ProducerOptions{Group: "orders"})
//	res, err := p.Send(ctx, &client.Message{Topic: "order-events", Tags: "created", Keys: []string{orderID}, Body: body})
//
//	// Transactions, in two steps that may run in different processes:
//	receipt, err := p.SendHalf(ctx, &client.Message{Topic: "payments", Body: body})
//	// ... run the local transaction, persist receipt (it is JSON) ...
//	err = p.EndTransaction(ctx, receipt, client.Commit)
//
//	// Answering check-backs for the group:
//	p, err := c.NewProducer(client.ProducerOptions{Group: "orders",
//		CheckListener: client.CheckListenerFunc(func(ctx context.Context, r *client.CheckRequest) client.TransactionState {
//			return lookUpLocalTransaction(ctx, r.Receipt.MsgID)
//		})})
//
//	// Consuming: the group's members share the queues (Broadcasting: each
//	// gets everything; Orderly: one call at a time per queue, in order). A
//	// message is acknowledged only when its handler succeeds; an error
//	// brings it back later through %RETRY%coupons, then parks it in %DLQ%coupons.
//	pc, err := c.NewPushConsumer(client.ConsumerOptions{Group: "coupons"})
//	err = pc.Subscribe("order-events", "created || paid", func(ctx context.Context, msgs []*client.MessageExt) (client.ConsumeResult, error) {
//		return client.ConsumeSuccess, grantCoupon(ctx, msgs[0])
//	})
//	err = pc.Start(ctx)
//	defer pc.Close()
//
//	// Consuming by message properties: the broker delivers only the
//	// messages a SQL92 expression is TRUE for (it needs
//	// broker.enablePropertyFilter; Start fails with ErrInvalidSubscription
//	// on a broker that refuses it).
//	err = pc.SubscribeSQL92("order-events", "amount > 100 AND TAGS IN ('paid')", handler)
package client
