package remoting

// Ext field names halfback adds to RocketMQ requests. A RocketMQ broker
// ignores ext fields it does not know, and RocketMQ clients never send
// these, so each is an opt-in extension that changes nothing for them.
const (
	// ExtSyncCommit, set to "true" on an UPDATE_CONSUMER_OFFSET request
	// ([ReqUpdateConsumerOffset]), asks a halfback broker to write its
	// consumer offsets file durably (fsync) before it answers SUCCESS; if
	// the write fails it answers SYSTEM_ERROR with the cause.
	ExtSyncCommit = "halfbackSyncCommit"
	// ExtFullTopicTable, set to "true" on a REGISTER_BROKER request
	// ([ReqRegisterBroker]), says the body holds the broker's whole topic
	// table, so a halfback name server stops routing the topics it lacks.
	// Without it a registration only adds and updates topics, as RocketMQ's
	// name server does: a RocketMQ broker registers a topic it just created
	// on its own (registerIncrementBrokerData).
	ExtFullTopicTable = "halfbackFullTopicTable"
)
