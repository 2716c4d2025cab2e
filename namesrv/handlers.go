package namesrv

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// routes is the table of request handlers.
func (s *Server) routes() *remoting.Mux {
	mux := remoting.NewMux()
	mux.HandleFunc(remoting.ReqRegisterBroker, s.handleRegisterBroker)
	mux.HandleFunc(remoting.ReqUnregisterBroker, s.handleUnregisterBroker)
	mux.HandleFunc(remoting.ReqGetRouteInfoByTopic, s.handleGetRoute)
	mux.HandleFunc(remoting.ReqGetBrokerClusterInfo, s.handleClusterInfo)
	mux.HandleFunc(remoting.ReqGetAllTopicListFromNameServer, s.handleTopicList)
	mux.HandleFunc(remoting.ReqGetTopicsByCluster, s.handleTopicsByCluster)
	mux.HandleFunc(remoting.ReqDeleteTopicInNameSrv, s.handleDeleteTopic)
	mux.HandleFunc(remoting.ReqPutKVConfig, s.handlePutKV)
	mux.HandleFunc(remoting.ReqGetKVConfig, s.handleGetKV)
	mux.HandleFunc(remoting.ReqDeleteKVConfig, s.handleDeleteKV)
	mux.HandleFunc(remoting.ReqGetKVListByNamespace, s.handleGetKVList)
	mux.HandleFunc(remoting.ReqQueryDataVersion, s.handleQueryDataVersion)
	mux.HandleFunc(remoting.ReqBrokerHeartbeat, s.handleBrokerHeartbeat)
	mux.HandleFunc(remoting.ReqWipeWritePermOfBroker, s.handleWritePerm("wipeTopicCount", true))
	mux.HandleFunc(remoting.ReqAddWritePermOfBroker, s.handleWritePerm("addTopicCount", false))
	return mux
}

// errorResponse answers req with SYSTEM_ERROR, as RocketMQ does for a
// header or body it cannot decode.
func errorResponse(req *remoting.Command, err error) *remoting.Command {
	return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
}

// jsonResponse answers req with SUCCESS and v as the JSON body.
func jsonResponse(req *remoting.Command, v any) *remoting.Command {
	body, err := json.Marshal(v)
	if err != nil {
		return errorResponse(req, err)
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = body
	return resp
}

// required returns the ext fields named, or an error naming the first
// missing one.
func required(req *remoting.Command, names ...string) ([]string, error) {
	vals := make([]string, len(names))
	for i, n := range names {
		vals[i] = req.Ext(n)
		if vals[i] == "" {
			return nil, fmt.Errorf("%w: the %s field is missing", ErrBadRequest, n)
		}
	}
	return vals, nil
}

// brokerID parses the brokerId field.
func brokerID(req *remoting.Command) (int64, error) {
	v := req.Ext("brokerId")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 0 {
		return 0, fmt.Errorf("%w: brokerId %q is not a broker id", ErrBadRequest, v)
	}
	return id, nil
}

// decodeRegistration reads a REGISTER_BROKER request
// (RegisterBrokerRequestHeader and its body).
func decodeRegistration(req *remoting.Command) (registration, error) {
	f, err := required(req, "brokerName", "brokerAddr", "clusterName", "brokerId")
	if err != nil {
		return registration{}, err
	}
	reg := registration{name: f[0], addr: f[1], cluster: f[2], haAddr: req.Ext("haServerAddr")}
	if !validBrokerAddr(reg.addr) {
		return registration{}, fmt.Errorf("%w: brokerAddr %q is not host:port", ErrBadRequest, reg.addr)
	}
	// Handed to the broker's slaves as their master's HA address.
	if reg.haAddr != "" && !validBrokerAddr(reg.haAddr) {
		return registration{}, fmt.Errorf("%w: haServerAddr %q is not host:port", ErrBadRequest, reg.haAddr)
	}
	if reg.id, err = brokerID(req); err != nil {
		return registration{}, err
	}
	// A 5.x broker with enableSlaveActingMaster asks to be dropped this long
	// after its last heartbeat (brokerNotActiveTimeoutMillis).
	if v := req.Ext("heartbeatTimeoutMillis"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms > int64(maxHeartbeatTimeout/time.Millisecond) {
			return registration{}, fmt.Errorf("%w: heartbeatTimeoutMillis %q is not a number of ms up to %d", ErrBadRequest, v, maxHeartbeatTimeout.Milliseconds())
		}
		if ms > 0 {
			reg.expiry = time.Duration(ms) * time.Millisecond
		}
	}
	if strings.EqualFold(req.Ext("compressed"), "true") {
		return registration{}, fmt.Errorf("%w: compressed registration bodies are not supported (set compressedRegister=false)", ErrBadRequest)
	}
	if v := req.Ext("bodyCrc32"); v != "" && v != "0" {
		want, err := strconv.ParseInt(v, 10, 64)
		// RocketMQ's UtilAll.crc32 keeps the low 31 bits.
		if got := int64(crc32.ChecksumIEEE(req.Body) & 0x7fffffff); err != nil || got != want {
			return registration{}, fmt.Errorf("%w: bodyCrc32 %s does not match the body (crc32 %d)", ErrBadRequest, v, got)
		}
	}
	w, ok, err := decodeRegisterBody(req.Body)
	if err != nil {
		return registration{}, err
	}
	if ok {
		reg.topics = &w
		reg.fullTable = req.Ext(remoting.ExtFullTopicTable) == "true"
	}
	return reg, nil
}

func (s *Server) handleRegisterBroker(_ context.Context, c *remoting.Conn, req *remoting.Command) *remoting.Command {
	reg, err := decodeRegistration(req)
	if err != nil {
		s.log.Warn("namesrv: bad REGISTER_BROKER", "remote", c.RemoteAddr(), "err", err)
		return errorResponse(req, err)
	}
	masterAddr, masterHA, first, err := s.reg.register(reg, c)
	if err != nil {
		s.log.Warn("namesrv: REGISTER_BROKER refused", "remote", c.RemoteAddr(), "err", err)
		return errorResponse(req, err)
	}
	if first {
		topics := -1
		if reg.topics != nil {
			topics = len(reg.topics.TopicConfigTable)
		}
		s.log.Info("namesrv: broker registered", "cluster", reg.cluster, "broker", reg.name, "id", reg.id, "addr", reg.addr, "topics", topics)
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	if masterAddr != "" {
		resp.ExtFields["masterAddr"] = masterAddr
		resp.ExtFields["haServerAddr"] = masterHA
	}
	if table, ok := s.kv.list(NamespaceOrderTopicConfig); ok {
		body, err := json.Marshal(KVTable{Table: table})
		if err != nil {
			return errorResponse(req, err)
		}
		resp.Body = body
	}
	return resp
}

func (s *Server) handleUnregisterBroker(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	f, err := required(req, "brokerName", "brokerAddr")
	if err != nil {
		return errorResponse(req, err)
	}
	id, err := brokerID(req)
	if err != nil {
		return errorResponse(req, err)
	}
	if s.reg.unregister(f[0], f[1], id) {
		s.log.Info("namesrv: broker unregistered", "broker", f[0], "id", id, "addr", f[1])
	}
	return remoting.NewResponse(req, remoting.RespSuccess, "")
}

// handleQueryDataVersion answers a broker asking whether its topic table
// needs registering (BrokerOuterAPI.needRegister) or heartbeating with it
// (sendHeartbeatViaDataVersion): SUCCESS, the changed header, and the
// version registered last as the body; the query keeps the broker alive
// when its version is unchanged (DefaultRequestProcessor.queryBrokerTopicConfig).
func (s *Server) handleQueryDataVersion(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	f, err := required(req, "brokerName", "brokerAddr", "clusterName", "brokerId")
	if err != nil {
		return errorResponse(req, err)
	}
	var v DataVersion
	if err := json.Unmarshal(req.Body, &v); err != nil {
		return errorResponse(req, fmt.Errorf("%w: data version: %v", ErrBadRequest, err))
	}
	held, known := s.reg.touch(f[2], f[1], &v)
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.ExtFields["changed"] = strconv.FormatBool(!known || held != v)
	if known {
		body, err := json.Marshal(held)
		if err != nil {
			return errorResponse(req, err)
		}
		resp.Body = body
	}
	return resp
}

// handleBrokerHeartbeat keeps a registered broker alive (a 5.x broker
// sends it oneway every second; DefaultRequestProcessor.brokerHeartbeat).
func (s *Server) handleBrokerHeartbeat(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	f, err := required(req, "clusterName", "brokerAddr", "brokerName")
	if err != nil {
		return errorResponse(req, err)
	}
	s.reg.touch(f[0], f[1], nil)
	return remoting.NewResponse(req, remoting.RespSuccess, "")
}

// handleWritePerm returns the handler of WIPE_WRITE_PERM_OF_BROKER (wipe)
// or ADD_WRITE_PERM_OF_BROKER: mqadmin wipeWritePerm / addWritePerm, which
// drain producers off a broker group and bring them back. The count of
// topics changed is answered in the header field countField.
func (s *Server) handleWritePerm(countField string, wipe bool) remoting.HandlerFunc {
	return func(_ context.Context, c *remoting.Conn, req *remoting.Command) *remoting.Command {
		f, err := required(req, "brokerName")
		if err != nil {
			return errorResponse(req, err)
		}
		n := s.reg.setWritePerm(f[0], wipe)
		s.log.Info("namesrv: write permission of broker changed", "broker", f[0], "wipe", wipe, "topics", n, "remote", c.RemoteAddr())
		resp := remoting.NewResponse(req, remoting.RespSuccess, "")
		resp.ExtFields[countField] = strconv.Itoa(n)
		return resp
	}
}

func (s *Server) handleGetRoute(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	f, err := required(req, "topic") // a missing header field: SYSTEM_ERROR, as RocketMQ's header decoding
	if err != nil {
		return errorResponse(req, err)
	}
	topic := f[0]
	rd, ok := s.reg.route(topic)
	if !ok {
		return remoting.NewResponse(req, remoting.RespTopicNotExist, "No topic route info in name server for the topic: "+topic)
	}
	if conf, ok := s.kv.get(NamespaceOrderTopicConfig, topic); ok {
		rd.OrderTopicConf = conf
	}
	return jsonResponse(req, rd)
}

func (s *Server) handleClusterInfo(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	return jsonResponse(req, s.reg.clusterInfo())
}

func (s *Server) handleTopicList(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	return jsonResponse(req, TopicList{TopicList: nonNil(s.reg.topicList(""))})
}

func (s *Server) handleTopicsByCluster(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	f, err := required(req, "cluster")
	if err != nil {
		return errorResponse(req, err)
	}
	return jsonResponse(req, TopicList{TopicList: nonNil(s.reg.topicList(f[0]))})
}

func (s *Server) handleDeleteTopic(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	f, err := required(req, "topic")
	if err != nil {
		return errorResponse(req, err)
	}
	s.reg.deleteTopic(f[0], req.Ext("clusterName"))
	s.log.Info("namesrv: topic deleted", "topic", f[0], "cluster", req.Ext("clusterName"))
	return remoting.NewResponse(req, remoting.RespSuccess, "")
}

func (s *Server) handlePutKV(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	f, err := required(req, "namespace", "key")
	if err != nil {
		return errorResponse(req, err)
	}
	if f[0] == NamespaceOrderTopicConfig {
		if err := checkOrderTopicConf(req.Ext("value")); err != nil {
			return errorResponse(req, err)
		}
	}
	s.kv.put(f[0], f[1], req.Ext("value"))
	return remoting.NewResponse(req, remoting.RespSuccess, "")
}

// checkOrderTopicConf checks an ORDER_TOPIC_CONFIG value, which routes
// carry to clients: "brokerName:queueNums" pairs joined by ';' (or
// nothing). The official Go client reads each pair's ':' unchecked and
// makes queueNums queues, so anything else would crash it.
func checkOrderTopicConf(v string) error {
	if v == "" {
		return nil
	}
	for _, pair := range strings.Split(v, ";") {
		name, nums, ok := strings.Cut(pair, ":")
		n, err := strconv.Atoi(nums)
		if !ok || name == "" || err != nil || n < 0 || n > maxRegisteredQueueNums {
			return fmt.Errorf("%w: %s %q is not brokerName:queueNums pairs joined by ';' (queueNums 0..%d)",
				ErrBadRequest, NamespaceOrderTopicConfig, v, maxRegisteredQueueNums)
		}
	}
	return nil
}

func (s *Server) handleGetKV(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	ns, key := req.Ext("namespace"), req.Ext("key")
	v, ok := s.kv.get(ns, key)
	if !ok {
		return remoting.NewResponse(req, remoting.RespQueryNotFound, "No config item, Namespace: "+ns+" Key: "+key)
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.ExtFields["value"] = v
	return resp
}

func (s *Server) handleDeleteKV(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	s.kv.remove(req.Ext("namespace"), req.Ext("key"))
	return remoting.NewResponse(req, remoting.RespSuccess, "")
}

func (s *Server) handleGetKVList(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	ns := req.Ext("namespace")
	table, ok := s.kv.list(ns)
	if !ok {
		return remoting.NewResponse(req, remoting.RespQueryNotFound, "No config item, Namespace: "+ns)
	}
	return jsonResponse(req, KVTable{Table: table})
}

// nonNil turns a nil list into an empty one, so that JSON says [] not null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// validBrokerAddr reports an address clients can dial and parse: an IP
// address or a host name, and a port. Anything else (a comma, say) would
// break the clients' parsing of every route that carries it.
func validBrokerAddr(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if host == "" || len(host) > 253 {
		return false
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}
