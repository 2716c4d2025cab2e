package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/fastjson"
)

// ErrUnknownCluster marks a cluster the name servers do not know.
var ErrUnknownCluster = errors.New("admin: cluster not known to the name server")

// BrokerAddr is one master broker of a cluster.
type BrokerAddr struct {
	Name string `json:"brokerName"`
	Addr string `json:"addr"`
}

// ClusterBrokers returns the master brokers of cluster, sorted by name, as
// the first name server of namesrvAddrs that answers knows them
// (GET_BROKER_CLUSTER_INFO): what mqadmin's -c option addresses.
func ClusterBrokers(ctx context.Context, namesrvAddrs []string, cluster string) ([]BrokerAddr, error) {
	if cluster == "" {
		return nil, fmt.Errorf("%w: empty cluster name", ErrInvalid)
	}
	if len(namesrvAddrs) == 0 {
		return nil, fmt.Errorf("%w: no name server address", ErrInvalid)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	var errs []error
	for _, addr := range namesrvAddrs {
		brokers, err := clusterBrokersFrom(ctx, addr, cluster)
		if err == nil || errors.Is(err, ErrUnknownCluster) {
			return brokers, err
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func clusterBrokersFrom(ctx context.Context, addr, cluster string) ([]BrokerAddr, error) {
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
	names, ok := info.ClusterAddrTable[cluster]
	if !ok {
		known := make([]string, 0, len(info.ClusterAddrTable))
		for c := range info.ClusterAddrTable {
			known = append(known, c)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("%w: %s (name server %s knows %s)", ErrUnknownCluster, cluster, addr, strings.Join(known, ", "))
	}
	var out []BrokerAddr
	for _, name := range names {
		if a := info.BrokerAddrTable[name].BrokerAddrs["0"]; a != "" { // the master
			out = append(out, BrokerAddr{Name: name, Addr: a})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s has no master broker registered with name server %s", ErrUnknownCluster, cluster, addr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
