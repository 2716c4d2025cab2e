package namesrv

import (
	"encoding/json"
	"fmt"
)

// The JSON documents of the name server protocol, in RocketMQ's shapes
// (RemotingSerializable: fastjson field names).

// Permission bits of a topic or queue, RocketMQ's PermName.
const (
	PermInherit = 1
	PermWrite   = 2
	PermRead    = 4
	PermRW      = PermRead | PermWrite
)

// Topic-name prefixes of consumer groups' retry and dead-letter topics
// (RocketMQ's MixAll.RETRY_GROUP_TOPIC_PREFIX and DLQ_GROUP_TOPIC_PREFIX).
const (
	RetryTopicPrefix = "%RETRY%"
	DLQTopicPrefix   = "%DLQ%"
)

// MasterID is the broker id of a master; slaves have ids above it.
const MasterID int64 = 0

// DataVersion versions a broker's topic table: a timestamp in ms and a
// counter bumped on every change (and, from RocketMQ 5, a state version
// bumped on a role change). Two versions are equal when all three are.
type DataVersion struct {
	StateVersion int64 `json:"stateVersion,omitempty"`
	Timestamp    int64 `json:"timestamp"`
	Counter      int64 `json:"counter"`
}

// TopicConfig is one topic of a broker's table, as registered.
type TopicConfig struct {
	TopicName       string `json:"topicName"`
	ReadQueueNums   int    `json:"readQueueNums"`
	WriteQueueNums  int    `json:"writeQueueNums"`
	Perm            int    `json:"perm"`
	TopicFilterType string `json:"topicFilterType,omitempty"`
	TopicSysFlag    int    `json:"topicSysFlag"`
	Order           bool   `json:"order"`
}

// TopicConfigSerializeWrapper is a broker's whole topic table, the body of
// REGISTER_BROKER from a broker older than 3.0.11 and part of
// [RegisterBrokerBody] since.
type TopicConfigSerializeWrapper struct {
	TopicConfigTable map[string]TopicConfig `json:"topicConfigTable"`
	DataVersion      DataVersion            `json:"dataVersion"`
}

// RegisterBrokerBody is the body of REGISTER_BROKER (uncompressed).
type RegisterBrokerBody struct {
	TopicConfigSerializeWrapper TopicConfigSerializeWrapper `json:"topicConfigSerializeWrapper"`
	FilterServerList            []string                    `json:"filterServerList"`
}

// QueueData is one broker's queues of a topic. RocketMQ 4.x and the Go
// client name the flag field topicSynFlag, 5.x topicSysFlag; both are sent.
type QueueData struct {
	BrokerName     string `json:"brokerName"`
	ReadQueueNums  int    `json:"readQueueNums"`
	WriteQueueNums int    `json:"writeQueueNums"`
	Perm           int    `json:"perm"`
	TopicSysFlag   int    `json:"topicSysFlag"`
	TopicSynFlag   int    `json:"topicSynFlag"`
}

// BrokerData is a broker group: its name, cluster, and the address of each
// member by broker id (0 is the master). The map is encoded as compact JSON
// with string keys ({"0":"127.0.0.1:10911"}), which the Go client v2.1.2
// splits by hand on ',' and the first ':'; it must never be null.
type BrokerData struct {
	Cluster     string           `json:"cluster"`
	BrokerName  string           `json:"brokerName"`
	BrokerAddrs map[int64]string `json:"brokerAddrs"`
}

// TopicRouteData answers GET_ROUTEINFO_BY_TOPIC.
type TopicRouteData struct {
	OrderTopicConf    string              `json:"orderTopicConf,omitempty"`
	QueueDatas        []QueueData         `json:"queueDatas"`
	BrokerDatas       []BrokerData        `json:"brokerDatas"`
	FilterServerTable map[string][]string `json:"filterServerTable"`
}

// ClusterInfo answers GET_BROKER_CLUSTER_INFO: broker groups by name, and
// the broker names of each cluster.
type ClusterInfo struct {
	BrokerAddrTable  map[string]BrokerData `json:"brokerAddrTable"`
	ClusterAddrTable map[string][]string   `json:"clusterAddrTable"`
}

// TopicList answers GET_ALL_TOPIC_LIST_FROM_NAMESERVER and
// GET_TOPICS_BY_CLUSTER.
type TopicList struct {
	TopicList  []string `json:"topicList"`
	BrokerAddr string   `json:"brokerAddr,omitempty"`
}

// KVTable answers GET_KVLIST_BY_NAMESPACE and carries the ORDER_TOPIC_CONFIG
// namespace in a REGISTER_BROKER response.
type KVTable struct {
	Table map[string]string `json:"table"`
}

// decodeRegisterBody reads a REGISTER_BROKER body: a RegisterBrokerBody, or
// (from brokers before 3.0.11) a bare TopicConfigSerializeWrapper. The second
// result is false for an empty body, which registers no topic change.
func decodeRegisterBody(body []byte) (TopicConfigSerializeWrapper, bool, error) {
	if len(body) == 0 {
		return TopicConfigSerializeWrapper{}, false, nil
	}
	var doc struct {
		Wrapper *TopicConfigSerializeWrapper `json:"topicConfigSerializeWrapper"`
		TopicConfigSerializeWrapper
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return TopicConfigSerializeWrapper{}, false, fmt.Errorf("%w: register body: %v", ErrBadRequest, err)
	}
	w := doc.TopicConfigSerializeWrapper
	if doc.Wrapper != nil {
		w = *doc.Wrapper
	}
	for name, tc := range w.TopicConfigTable {
		if tc.TopicName == "" {
			tc.TopicName = name
		}
		if tc.TopicName != name {
			return TopicConfigSerializeWrapper{}, false, fmt.Errorf("%w: register body: topic %q listed under %q", ErrBadRequest, tc.TopicName, name)
		}
		if tc.ReadQueueNums < 0 || tc.WriteQueueNums < 0 {
			return TopicConfigSerializeWrapper{}, false, fmt.Errorf("%w: register body: topic %q has negative queue counts", ErrBadRequest, name)
		}
		if tc.ReadQueueNums > maxRegisteredQueueNums || tc.WriteQueueNums > maxRegisteredQueueNums {
			return TopicConfigSerializeWrapper{}, false, fmt.Errorf("%w: register body: topic %q has %d/%d queues (at most %d)",
				ErrBadRequest, name, tc.ReadQueueNums, tc.WriteQueueNums, maxRegisteredQueueNums)
		}
		w.TopicConfigTable[name] = tc
	}
	return w, true, nil
}
