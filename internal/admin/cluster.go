package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/fastjson"
)

// ErrUnknownCluster marks a cluster the name servers do not know.
var ErrUnknownCluster = errors.New("admin: cluster not known to the name server")

// BrokerAddr is one broker group of a cluster and its master.
type BrokerAddr struct {
	Name string `json:"brokerName"`
	// Addr is the master's address; "" for a broker group with no master
	// registered (its master is down, a slave is not).
	Addr string `json:"addr"`
}

// ClusterBrokers returns the broker groups of cluster with their masters,
// sorted by name, as the first name server of namesrvAddrs that answers
// knows them (GET_BROKER_CLUSTER_INFO): what mqadmin's -c option
// addresses. A group without a master comes with Addr "", so that the
// caller can say it was not reached; a cluster with no master at all is
// ErrUnknownCluster.
func ClusterBrokers(ctx context.Context, namesrvAddrs []string, cluster string) ([]BrokerAddr, error) {
	if cluster == "" {
		return nil, fmt.Errorf("%w: empty cluster name", ErrInvalid)
	}
	clusters, addr, err := Clusters(ctx, namesrvAddrs)
	if err != nil {
		return nil, err
	}
	brokers, ok := clusters[cluster]
	if !ok {
		known := make([]string, 0, len(clusters))
		for c := range clusters {
			known = append(known, c)
		}
		sort.Strings(known)
		knows := strings.Join(known, ", ")
		if len(known) == 0 {
			knows = "no cluster: no broker is registered with it"
		}
		return nil, fmt.Errorf("%w: %s (name server %s knows %s)", ErrUnknownCluster, cluster, addr, knows)
	}
	for _, b := range brokers {
		if b.Addr != "" {
			return brokers, nil
		}
	}
	return nil, fmt.Errorf("%w: %s has no master broker registered with name server %s", ErrUnknownCluster, cluster, addr)
}

// Clusters returns every cluster's broker groups with their masters
// (Addr "" where none is registered), sorted by name, as the
// first name server of namesrvAddrs that answers knows them
// (GET_BROKER_CLUSTER_INFO), and that name server's address.
func Clusters(ctx context.Context, namesrvAddrs []string) (map[string][]BrokerAddr, string, error) {
	if len(namesrvAddrs) == 0 {
		return nil, "", fmt.Errorf("%w: no name server address", ErrInvalid)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	var errs []error
	for _, addr := range namesrvAddrs {
		clusters, err := clustersFrom(ctx, addr)
		if err == nil {
			return clusters, addr, nil
		}
		errs = append(errs, err)
	}
	return nil, "", errors.Join(errs...)
}

func clustersFrom(ctx context.Context, addr string) (map[string][]BrokerAddr, error) {
	conn, err := remoting.Dial(ctx, addr, remoting.DialOptions{})
	if err != nil {
		return nil, fmt.Errorf("admin: connect to name server %s: %w", addr, err)
	}
	defer conn.Close()
	const op = "GET_BROKER_CLUSTER_INFO"
	resp, err := conn.Invoke(ctx, remoting.NewRequest(remoting.ReqGetBrokerClusterInfo, nil))
	if err != nil {
		return nil, fmt.Errorf("%s to %s: %w", op, addr, err)
	}
	if resp.Code != remoting.RespSuccess {
		return nil, brokerError(op, resp)
	}
	var info struct {
		BrokerAddrTable map[string]struct {
			BrokerAddrs map[string]string `json:"brokerAddrs"`
		} `json:"brokerAddrTable"`
		ClusterAddrTable map[string][]string `json:"clusterAddrTable"`
	}
	if err := json.Unmarshal(fastjson.QuoteNumericKeys(resp.Body), &info); err != nil {
		return nil, fmt.Errorf("%s from %s: bad answer: %w", op, addr, err)
	}
	out := make(map[string][]BrokerAddr, len(info.ClusterAddrTable))
	for cluster, names := range info.ClusterAddrTable {
		brokers := []BrokerAddr{}
		for _, name := range names {
			brokers = append(brokers, BrokerAddr{Name: name, Addr: info.BrokerAddrTable[name].BrokerAddrs["0"]}) // "0": the master
		}
		sort.Slice(brokers, func(i, j int) bool { return brokers[i].Name < brokers[j].Name })
		out[cluster] = brokers
	}
	return out, nil
}

// RuntimeInfo returns the broker's running figures by name
// (GET_BROKER_RUNTIME_INFO, mqadmin brokerStatus).
func (c *Client) RuntimeInfo(ctx context.Context) (map[string]string, error) {
	resp, err := c.call(ctx, "GET_BROKER_RUNTIME_INFO", remoting.ReqGetBrokerRuntimeInfo, nil, nil)
	if err != nil {
		return nil, err
	}
	var body struct {
		Table map[string]string `json:"table"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return nil, fmt.Errorf("GET_BROKER_RUNTIME_INFO: bad answer: %w", err)
	}
	if body.Table == nil {
		body.Table = map[string]string{}
	}
	return body.Table, nil
}

// BrokerConfig returns the settings the broker runs with by name
// (GET_BROKER_CONFIG, mqadmin getBrokerConfig): RocketMQ's BrokerConfig
// and MessageStoreConfig names, and halfback's own prefixed "halfback".
// A RocketMQ broker answers too, with all of its own.
func (c *Client) BrokerConfig(ctx context.Context) (map[string]string, error) {
	resp, err := c.call(ctx, "GET_BROKER_CONFIG", remoting.ReqGetBrokerConfig, nil, nil)
	if err != nil {
		return nil, err
	}
	return parseProperties(string(resp.Body)), nil
}

// parseProperties reads a properties text as RocketMQ's brokers write it
// (java.util.Properties): "name=value" lines, '#' and '!' comments, the
// escapes \\, \n, \r, \t, \f, \uXXXX (UTF-16 code units, as a halfback
// broker writes every character beyond ASCII) and a backslash before any
// other character. Continuation lines and ':' separators, which RocketMQ
// does not write, are not read.
func parseProperties(text string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimLeft(strings.TrimSuffix(line, "\r"), " \t\f")
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		name, value, _ := strings.Cut(line, "=")
		out[strings.TrimSpace(name)] = unescapeProperty(strings.TrimLeft(value, " \t\f"))
	}
	return out
}

// unescapeProperty undoes a properties value's escapes.
func unescapeProperty(v string) string {
	if !strings.Contains(v, "\\") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' || i+1 == len(v) {
			b.WriteByte(v[i])
			continue
		}
		i++
		switch v[i] {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			r, ok := hexUnit(v[i+1:])
			if !ok {
				b.WriteByte('u') // Java refuses a malformed \uXXXX; keep what is there
				continue
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if r2, ok := hexUnit(strings.TrimPrefix(v[i+1:], `\u`)); ok && strings.HasPrefix(v[i+1:], `\u`) {
					if pair := utf16.DecodeRune(r, r2); pair != unicode.ReplacementChar {
						r, i = pair, i+6
					}
				}
			}
			b.WriteRune(r)
		default:
			b.WriteByte(v[i])
		}
	}
	return b.String()
}

// hexUnit reads the four hex digits s starts with.
func hexUnit(s string) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	u, err := strconv.ParseUint(s[:4], 16, 16)
	return rune(u), err == nil
}

// WritePermResult is one name server's answer to SetWritePerm.
type WritePermResult struct {
	Namesrv string `json:"namesrv"`
	// Topics is how many of the broker group's topics the name server
	// changed.
	Topics int    `json:"topics"`
	Error  string `json:"error,omitempty"`
}

// SetWritePerm takes the write permission off every topic of broker
// group brokerName in the routes of each name server of namesrvAddrs
// (wipe: WIPE_WRITE_PERM_OF_BROKER, mqadmin wipeWritePerm), so that
// producers stop sending to it while consumers keep reading it, or gives
// it back (ADD_WRITE_PERM_OF_BROKER, mqadmin addWritePerm). As with
// RocketMQ, a wipe lasts until the broker's topic table changes (it then
// registers the table again) or the name server restarts. Every name
// server is asked; the error joins those that failed.
func SetWritePerm(ctx context.Context, namesrvAddrs []string, brokerName string, wipe bool) ([]WritePermResult, error) {
	if len(namesrvAddrs) == 0 {
		return nil, fmt.Errorf("%w: no name server address", ErrInvalid)
	}
	if brokerName == "" || strings.ContainsAny(brokerName, " \t\r\n") {
		return nil, fmt.Errorf("%w: broker name %q", ErrInvalid, brokerName)
	}
	_, bounded := ctx.Deadline()
	op, code, field := "ADD_WRITE_PERM_OF_BROKER", remoting.ReqAddWritePermOfBroker, "addTopicCount"
	if wipe {
		op, code, field = "WIPE_WRITE_PERM_OF_BROKER", remoting.ReqWipeWritePermOfBroker, "wipeTopicCount"
	}
	var out []WritePermResult
	var errs []error
	for _, addr := range namesrvAddrs {
		// Without the caller's deadline each name server gets its own
		// DefaultTimeout: one that does not answer must not use up the
		// time of those after it, which would then not be asked at all.
		actx, cancel := ctx, context.CancelFunc(func() {})
		if !bounded {
			actx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		}
		n, err := writePermAt(actx, addr, op, code, field, brokerName)
		cancel()
		r := WritePermResult{Namesrv: addr, Topics: n}
		if err != nil {
			r.Error = err.Error()
			errs = append(errs, err)
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

func writePermAt(ctx context.Context, addr, op string, code int16, field, brokerName string) (int, error) {
	conn, err := remoting.Dial(ctx, addr, remoting.DialOptions{})
	if err != nil {
		return 0, fmt.Errorf("admin: connect to name server %s: %w", addr, err)
	}
	defer conn.Close()
	resp, err := conn.Invoke(ctx, remoting.NewRequest(code, map[string]string{"brokerName": brokerName}))
	if err != nil {
		return 0, fmt.Errorf("%s to %s: %w", op, addr, err)
	}
	if resp.Code != remoting.RespSuccess {
		return 0, fmt.Errorf("name server %s: %w", addr, brokerError(op, resp))
	}
	n, err := strconv.Atoi(resp.Ext(field))
	if err != nil {
		return 0, fmt.Errorf("%s from %s: bad %s %q", op, addr, field, resp.Ext(field))
	}
	return n, nil
}
