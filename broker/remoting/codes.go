package remoting

// Request codes, RocketMQ's RequestCode numbers. Each was checked against
// remoting/.../protocol/RequestCode.java of apache/rocketmq (develop, 2025),
// and against common/.../protocol/RequestCode.java of rocketmq-all-4.5.1 and
// 4.9.8 where the code exists there (no number differs between them). The
// codes the official Go client v2.1.2 uses (internal/request.go) are marked
// "Go client"; its own names are given where they differ from Java's.
const (
	// Producer and consumer traffic to the broker.
	ReqSendMessage              int16 = 10  // SEND_MESSAGE; Go client
	ReqPullMessage              int16 = 11  // PULL_MESSAGE; Go client
	ReqQueryMessage             int16 = 12  // QUERY_MESSAGE; Go client
	ReqQueryBrokerOffset        int16 = 13  // QUERY_BROKER_OFFSET
	ReqQueryConsumerOffset      int16 = 14  // QUERY_CONSUMER_OFFSET; Go client
	ReqUpdateConsumerOffset     int16 = 15  // UPDATE_CONSUMER_OFFSET; Go client
	ReqSearchOffsetByTimestamp  int16 = 29  // SEARCH_OFFSET_BY_TIMESTAMP; Go client
	ReqGetMaxOffset             int16 = 30  // GET_MAX_OFFSET; Go client
	ReqGetMinOffset             int16 = 31  // GET_MIN_OFFSET
	ReqGetEarliestMsgStoreTime  int16 = 32  // GET_EARLIEST_MSG_STORETIME
	ReqViewMessageByID          int16 = 33  // VIEW_MESSAGE_BY_ID; Go client
	ReqHeartBeat                int16 = 34  // HEART_BEAT; Go client
	ReqUnregisterClient         int16 = 35  // UNREGISTER_CLIENT (Java client shutdown)
	ReqConsumerSendMsgBack      int16 = 36  // CONSUMER_SEND_MSG_BACK; Go client
	ReqEndTransaction           int16 = 37  // END_TRANSACTION; Go client (oneway)
	ReqGetConsumerListByGroup   int16 = 38  // GET_CONSUMER_LIST_BY_GROUP; Go client
	ReqCheckTransactionState    int16 = 39  // CHECK_TRANSACTION_STATE, broker to producer; Go client handles it
	ReqNotifyConsumerIdsChanged int16 = 40  // NOTIFY_CONSUMER_IDS_CHANGED, broker to consumer; Go client handles it
	ReqLockBatchMQ              int16 = 41  // LOCK_BATCH_MQ; Go client
	ReqUnlockBatchMQ            int16 = 42  // UNLOCK_BATCH_MQ; Go client
	ReqGetAllConsumerOffset     int16 = 43  // GET_ALL_CONSUMER_OFFSET (broker to broker)
	ReqGetAllDelayOffset        int16 = 45  // GET_ALL_DELAY_OFFSET (broker to broker)
	ReqCheckClientConfig        int16 = 46  // CHECK_CLIENT_CONFIG (Java push consumer, SQL92 filter)
	ReqSendMessageV2            int16 = 310 // SEND_MESSAGE_V2 (Java client default; short header keys a..n)
	ReqSendBatchMessage         int16 = 320 // SEND_BATCH_MESSAGE; Go client (V2 header keys)
	ReqSendReplyMessage         int16 = 324 // SEND_REPLY_MESSAGE; Go client
	ReqSendReplyMessageV2       int16 = 325 // SEND_REPLY_MESSAGE_V2; Go client
	ReqPushReplyMessageToClient int16 = 326 // PUSH_REPLY_MESSAGE_TO_CLIENT, broker to requester; Go client handles it
	ReqQueryAssignment          int16 = 400 // QUERY_ASSIGNMENT (Java 5 client, server-side rebalance)
	ReqSetMessageRequestMode    int16 = 401 // SET_MESSAGE_REQUEST_MODE (Java 5 admin)

	// halfback's own administration requests: RocketMQ has no equivalent,
	// and uses no number between 3011 and 200049.
	ReqHalfbackListTransactions   int16 = 7001 // list pending and parked transactions (JSON body)
	ReqHalfbackResumeTransaction  int16 = 7002 // resume a parked transaction's checks
	ReqHalfbackResolveTransaction int16 = 7003 // an operator commits or rolls back a live transaction
	ReqHalfbackMessageTrace       int16 = 7004 // the lifecycle of messages by id, key or trace id (JSON body)

	// Broker administration (mqadmin, Go client admin package).
	ReqUpdateAndCreateTopic             int16 = 17  // UPDATE_AND_CREATE_TOPIC; Go client ReqCreateTopic
	ReqGetAllTopicConfig                int16 = 21  // GET_ALL_TOPIC_CONFIG
	ReqGetTopicConfigList               int16 = 22  // GET_TOPIC_CONFIG_LIST
	ReqGetTopicNameList                 int16 = 23  // GET_TOPIC_NAME_LIST
	ReqUpdateBrokerConfig               int16 = 25  // UPDATE_BROKER_CONFIG
	ReqGetBrokerConfig                  int16 = 26  // GET_BROKER_CONFIG
	ReqGetBrokerRuntimeInfo             int16 = 28  // GET_BROKER_RUNTIME_INFO
	ReqUpdateAndCreateSubscriptionGroup int16 = 200 // UPDATE_AND_CREATE_SUBSCRIPTIONGROUP
	ReqGetAllSubscriptionGroupConfig    int16 = 201 // GET_ALL_SUBSCRIPTIONGROUP_CONFIG; Go client
	ReqGetTopicStatsInfo                int16 = 202 // GET_TOPIC_STATS_INFO
	ReqGetConsumerConnectionList        int16 = 203 // GET_CONSUMER_CONNECTION_LIST
	ReqGetProducerConnectionList        int16 = 204 // GET_PRODUCER_CONNECTION_LIST
	ReqDeleteSubscriptionGroup          int16 = 207 // DELETE_SUBSCRIPTIONGROUP
	ReqGetConsumeStats                  int16 = 208 // GET_CONSUME_STATS
	ReqDeleteTopicInBroker              int16 = 215 // DELETE_TOPIC_IN_BROKER; Go client
	ReqResetConsumerClientOffset        int16 = 220 // RESET_CONSUMER_CLIENT_OFFSET, broker to consumer; Go client ReqResetConsumerOffset
	ReqGetConsumerStatusFromClient      int16 = 221 // GET_CONSUMER_STATUS_FROM_CLIENT, broker to consumer; Go client ReqGetConsumerStatsFromClient
	ReqInvokeBrokerToResetOffset        int16 = 222 // INVOKE_BROKER_TO_RESET_OFFSET
	ReqInvokeBrokerToGetConsumerStatus  int16 = 223 // INVOKE_BROKER_TO_GET_CONSUMER_STATUS
	ReqQueryTopicConsumeByWho           int16 = 300 // QUERY_TOPIC_CONSUME_BY_WHO
	ReqGetSystemTopicListFromBroker     int16 = 305 // GET_SYSTEM_TOPIC_LIST_FROM_BROKER
	ReqGetConsumerRunningInfo           int16 = 307 // GET_CONSUMER_RUNNING_INFO, broker to consumer; Go client handles it
	ReqConsumeMessageDirectly           int16 = 309 // CONSUME_MESSAGE_DIRECTLY, broker to consumer; Go client handles it
	ReqGetBrokerConsumeStats            int16 = 317 // GET_BROKER_CONSUME_STATS
	ReqQueryConsumeQueue                int16 = 321 // QUERY_CONSUME_QUEUE
	ReqResumeCheckHalfMessage           int16 = 323 // RESUME_CHECK_HALF_MESSAGE
	ReqGetTopicConfig                   int16 = 351 // GET_TOPIC_CONFIG (5.x)

	// Name server.
	ReqPutKVConfig                   int16 = 100 // PUT_KV_CONFIG
	ReqGetKVConfig                   int16 = 101 // GET_KV_CONFIG
	ReqDeleteKVConfig                int16 = 102 // DELETE_KV_CONFIG
	ReqRegisterBroker                int16 = 103 // REGISTER_BROKER
	ReqUnregisterBroker              int16 = 104 // UNREGISTER_BROKER
	ReqGetRouteInfoByTopic           int16 = 105 // GET_ROUTEINFO_BY_TOPIC (GET_ROUTEINTO_BY_TOPIC in 4.x); Go client
	ReqGetBrokerClusterInfo          int16 = 106 // GET_BROKER_CLUSTER_INFO; Go client
	ReqWipeWritePermOfBroker         int16 = 205 // WIPE_WRITE_PERM_OF_BROKER
	ReqGetAllTopicListFromNameServer int16 = 206 // GET_ALL_TOPIC_LIST_FROM_NAMESERVER; Go client
	ReqDeleteTopicInNameSrv          int16 = 216 // DELETE_TOPIC_IN_NAMESRV; Go client
	ReqRegisterTopicInNameSrv        int16 = 217 // REGISTER_TOPIC_IN_NAMESRV
	ReqGetKVListByNamespace          int16 = 219 // GET_KVLIST_BY_NAMESPACE
	ReqGetTopicsByCluster            int16 = 224 // GET_TOPICS_BY_CLUSTER
	ReqGetSystemTopicListFromNS      int16 = 304 // GET_SYSTEM_TOPIC_LIST_FROM_NS
	ReqUpdateNamesrvConfig           int16 = 318 // UPDATE_NAMESRV_CONFIG
	ReqGetNamesrvConfig              int16 = 319 // GET_NAMESRV_CONFIG
	ReqQueryDataVersion              int16 = 322 // QUERY_DATA_VERSION (broker to name server)
	ReqAddWritePermOfBroker          int16 = 327 // ADD_WRITE_PERM_OF_BROKER
	ReqBrokerHeartbeat               int16 = 904 // BROKER_HEARTBEAT (5.x broker to name server)
)

// Response codes, RocketMQ's RemotingSysResponseCode (0-4) and ResponseCode
// numbers, checked against apache/rocketmq develop (2025) and
// rocketmq-all-4.5.1/4.9.8; the ones the Go client v2.1.2 tests
// (internal/response.go) are marked "Go client". 209-211 are left out: 4.x
// used them for ACL failures, 5.x for POLLING_FULL/POLLING_TIMEOUT/BROKER_NOT_EXIST.
const (
	RespSuccess                    int16 = 0    // SUCCESS; Go client ResSuccess
	RespSystemError                int16 = 1    // SYSTEM_ERROR; Go client ResError
	RespSystemBusy                 int16 = 2    // SYSTEM_BUSY
	RespRequestCodeNotSupported    int16 = 3    // REQUEST_CODE_NOT_SUPPORTED
	RespTransactionFailed          int16 = 4    // TRANSACTION_FAILED
	RespFlushDiskTimeout           int16 = 10   // FLUSH_DISK_TIMEOUT; Go client
	RespSlaveNotAvailable          int16 = 11   // SLAVE_NOT_AVAILABLE; Go client
	RespFlushSlaveTimeout          int16 = 12   // FLUSH_SLAVE_TIMEOUT; Go client
	RespMessageIllegal             int16 = 13   // MESSAGE_ILLEGAL
	RespServiceNotAvailable        int16 = 14   // SERVICE_NOT_AVAILABLE; Go client
	RespVersionNotSupported        int16 = 15   // VERSION_NOT_SUPPORTED
	RespNoPermission               int16 = 16   // NO_PERMISSION; Go client
	RespTopicNotExist              int16 = 17   // TOPIC_NOT_EXIST; Go client
	RespTopicExistAlready          int16 = 18   // TOPIC_EXIST_ALREADY
	RespPullNotFound               int16 = 19   // PULL_NOT_FOUND; Go client
	RespPullRetryImmediately       int16 = 20   // PULL_RETRY_IMMEDIATELY; Go client
	RespPullOffsetMoved            int16 = 21   // PULL_OFFSET_MOVED; Go client
	RespQueryNotFound              int16 = 22   // QUERY_NOT_FOUND; Go client
	RespSubscriptionParseFailed    int16 = 23   // SUBSCRIPTION_PARSE_FAILED
	RespSubscriptionNotExist       int16 = 24   // SUBSCRIPTION_NOT_EXIST
	RespSubscriptionNotLatest      int16 = 25   // SUBSCRIPTION_NOT_LATEST
	RespSubscriptionGroupNotExist  int16 = 26   // SUBSCRIPTION_GROUP_NOT_EXIST
	RespFilterDataNotExist         int16 = 27   // FILTER_DATA_NOT_EXIST
	RespFilterDataNotLatest        int16 = 28   // FILTER_DATA_NOT_LATEST
	RespInvalidParameter           int16 = 29   // INVALID_PARAMETER (5.x)
	RespTransactionShouldCommit    int16 = 200  // TRANSACTION_SHOULD_COMMIT
	RespTransactionShouldRollback  int16 = 201  // TRANSACTION_SHOULD_ROLLBACK
	RespTransactionStateUnknow     int16 = 202  // TRANSACTION_STATE_UNKNOW (sic)
	RespTransactionStateGroupWrong int16 = 203  // TRANSACTION_STATE_GROUP_WRONG
	RespNoBuyerID                  int16 = 204  // NO_BUYER_ID
	RespNotInCurrentUnit           int16 = 205  // NOT_IN_CURRENT_UNIT
	RespConsumerNotOnline          int16 = 206  // CONSUMER_NOT_ONLINE
	RespConsumeMsgTimeout          int16 = 207  // CONSUME_MSG_TIMEOUT
	RespNoMessage                  int16 = 208  // NO_MESSAGE
	RespFlowControl                int16 = 215  // FLOW_CONTROL
	RespNotLeaderForQueue          int16 = 501  // NOT_LEADER_FOR_QUEUE (5.x)
	RespIllegalOperation           int16 = 604  // ILLEGAL_OPERATION (5.x)
	RespGoAway                     int16 = 1500 // GO_AWAY (5.x)
)
