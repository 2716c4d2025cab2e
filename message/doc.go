// Package message implements Apache RocketMQ's message wire format: the
// stored-message record (the "MessageExt" layout that the commit log holds and
// a pull response carries), the property encoding, message ids and the tag
// hash code used by consume queues.
//
// It knows nothing of files or sockets; the store, the broker and the client
// all share it so a record is encoded exactly once, when it is appended, and
// every later reader sees the same bytes.
//
// # Record layout
//
// All integers are big-endian. Hosts are 4 address bytes and a 4-byte port
// (16 + 4 when the matching sysFlag V6 bit is set).
//
//	totalSize int32 | magic int32 | bodyCRC int32 | queueID int32 | flag int32
//	queueOffset int64 | physicalOffset int64 | sysFlag int32
//	bornTimestamp int64 | bornHost | storeTimestamp int64 | storeHost
//	reconsumeTimes int32 | preparedTransactionOffset int64
//	bodyLen int32 | body | topicLen uint8 | topic | propsLen int16 | properties
//
// # Usage
//
//	rec, err := message.AppendRecord(nil, &message.Message{Topic: "orders", Body: body})
//	ext, n, err := message.Decode(rec)
package message
