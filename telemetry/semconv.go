package telemetry

import "go.opentelemetry.io/otel/attribute"

// Messaging semantic-convention attribute keys (OpenTelemetry messaging
// conventions, with the RocketMQ-specific ones).
const (
	KeySystem           = attribute.Key("messaging.system")
	KeyOperationType    = attribute.Key("messaging.operation.type")
	KeyOperationName    = attribute.Key("messaging.operation.name")
	KeyDestination      = attribute.Key("messaging.destination.name")
	KeyMessageID        = attribute.Key("messaging.message.id")
	KeyConsumerGroup    = attribute.Key("messaging.consumer.group.name")
	KeyBatchCount       = attribute.Key("messaging.batch.message_count")
	KeyBodySize         = attribute.Key("messaging.message.body.size")
	KeyRocketMQType     = attribute.Key("messaging.rocketmq.message.type")
	KeyRocketMQDelay    = attribute.Key("messaging.rocketmq.message.delay_time_level")
	KeyRocketMQDeliver  = attribute.Key("messaging.rocketmq.message.delivery_timestamp")
	KeyRocketMQKeys     = attribute.Key("messaging.rocketmq.message.keys")
	KeyRocketMQTag      = attribute.Key("messaging.rocketmq.message.tag")
	KeyRocketMQGroup    = attribute.Key("messaging.rocketmq.message.group")
	KeyRocketMQClient   = attribute.Key("messaging.rocketmq.client_group")
	KeyRocketMQModel    = attribute.Key("messaging.rocketmq.consumption_model")
	KeyRocketMQReconsum = attribute.Key("messaging.rocketmq.message.reconsume_times") // halfback's addition
)

// Values of messaging.system, messaging.operation.type and
// messaging.rocketmq.message.type.
const (
	SystemRocketMQ = "rocketmq"

	OpCreate  = "create"
	OpSend    = "send"
	OpReceive = "receive"
	OpProcess = "process"
	OpSettle  = "settle"

	TypeNormal      = "normal"
	TypeFIFO        = "fifo"
	TypeDelay       = "delay"
	TypeTransaction = "transaction"
)

// System is the messaging.system attribute of every halfback message span.
func System() attribute.KeyValue { return KeySystem.String(SystemRocketMQ) }
