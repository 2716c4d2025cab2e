// Package namesrv is the RocketMQ name server: broker registration with
// heartbeat expiry and topic routes.
//
// Brokers send REGISTER_BROKER with their topic table every 30 s; the name
// server remembers each broker's address, cluster and the queues it serves,
// and drops a broker that has not re-registered within
// [Options].BrokerExpiry (120 s, RocketMQ's), unregisters, or whose
// registering connection closes. Clients ask GET_ROUTEINFO_BY_TOPIC for a
// topic's route: the queues of every live broker that serves it and those
// brokers' addresses ([TopicRouteData]). With [Options].AutoCreateTopic (the
// default) an unknown topic is answered with DefaultQueueNums queues (no more
// than the broker registers TBW102 with) on every live master broker that
// creates topics on first use (it registers [AutoCreateTopicKey], TBW102, as
// RocketMQ's brokers do), which creates the
// topic on the first send; with no such broker, without it,
// and always for a consumer group's %RETRY% and %DLQ% topics (brokers create
// those with one queue and register them), the answer is TOPIC_NOT_EXIST.
//
// # Requests
//
// REGISTER_BROKER (103), UNREGISTER_BROKER (104), GET_ROUTEINFO_BY_TOPIC
// (105), GET_BROKER_CLUSTER_INFO (106), GET_ALL_TOPIC_LIST_FROM_NAMESERVER
// (206), DELETE_TOPIC_IN_NAMESRV (216), GET_TOPICS_BY_CLUSTER (224), and the
// in-memory key/value configuration: PUT_KV_CONFIG (100), GET_KV_CONFIG
// (101), DELETE_KV_CONFIG (102), GET_KVLIST_BY_NAMESPACE (219), and the
// brokers' heartbeats QUERY_DATA_VERSION (322: is my topic table's version
// yours?) and BROKER_HEARTBEAT (904), which keep a registered broker alive
// as a registration does. A broker registering with heartbeatTimeoutMillis
// (a 5.x broker with enableSlaveActingMaster) expires that long after its
// last registration or heartbeat instead of BrokerExpiry. mqadmin's
// wipeWritePerm and addWritePerm (WIPE_WRITE_PERM_OF_BROKER 205,
// ADD_WRITE_PERM_OF_BROKER 327) take the write permission off a broker
// group's topics in the routes, to drain producers from it, and give it
// back. Bodies are
// RocketMQ's JSON documents; the wire types are exported here so that the
// broker and tests share them.
//
// A registration adds and updates the topics a master broker serves, as
// RocketMQ's does (a RocketMQ broker registers a topic it just created on
// its own); with the data version the broker registered last, it only adds
// the topics not routed to it yet (RocketMQ's isTopicConfigChanged), so
// that a wiped write permission stays wiped until the broker's table
// changes. One marked [remoting.ExtFullTopicTable], as a halfback broker's
// are, replaces them: a topic missing from its table is no longer routed to
// it (RocketMQ's deleteTopicWithBrokerRegistration). Compressed registration bodies (a Java
// broker with compressedRegister=true) are refused.
//
// # Usage
//
//	srv, err := namesrv.Open(namesrv.Options{ListenAddr: "127.0.0.1:9876"})
//	defer srv.Close()
//	b, err := broker.Open(broker.Options{NamesrvAddrs: []string{srv.Addr()}, ...})
package namesrv
