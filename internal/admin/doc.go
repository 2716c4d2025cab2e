// Package admin is a typed client for administering a halfback (or
// RocketMQ) broker over the remoting protocol
// ([github.com/halfbackmq/halfback/broker/remoting]). The `halfback topic`,
// `send`, `consume`, `msg`, `group` and `dlq` commands are built on it.
//
// Each method is one administrative action and sends RocketMQ's own
// requests, so it also works against a Java broker (except where noted):
//
//   - topics: [Client.CreateTopic] (UPDATE_AND_CREATE_TOPIC),
//     [Client.ListTopics] (GET_ALL_TOPIC_CONFIG), [Client.DeleteTopic]
//     (DELETE_TOPIC_IN_BROKER);
//   - messages: [Client.Send] (SEND_MESSAGE_V2, with a UNIQ_KEY it
//     generates), [Client.Pull] (PULL_MESSAGE, no long polling),
//     [Client.QueryByKey] (QUERY_MESSAGE), [Client.ViewMessage]
//     (VIEW_MESSAGE_BY_ID);
//   - consumer offsets: [Client.QueryOffset], [Client.CommitOffset],
//     [Client.QueueBounds] and [Client.GroupOffsets] (GET_CONSUME_STATS,
//     with the lag of every queue);
//   - dead letters: [Client.DLQMessages] reads %DLQ%<group>;
//     [Client.ResendDLQ] sends one of them back to its original topic.
//
// A broker's refusal comes back as a [*BrokerError] carrying the response
// code and the broker's remark.
//
// # Usage
//
//	c, err := admin.Dial(ctx, "127.0.0.1:10911")
//	defer c.Close()
//	res, err := c.Send(ctx, admin.SendRequest{Topic: "orders", Tag: "created", Body: []byte("hi")})
//	m, err := c.ViewMessage(ctx, res.OffsetMsgID)
package admin
