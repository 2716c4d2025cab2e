package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/internal/admin"
)

// clusterBroker is one broker of `cluster list --json`.
type clusterBroker struct {
	Cluster string            `json:"cluster"`
	Broker  string            `json:"brokerName"`
	Addr    string            `json:"addr"`
	Runtime map[string]string `json:"runtime,omitempty"`
	Error   string            `json:"error,omitempty"`
}

func newClusterCmd() *cobra.Command {
	var o adminOpts
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the clusters and brokers a name server knows, with each broker's running figures",
	}
	cmd.PersistentFlags().BoolVar(&o.json, "json", false, "print one JSON value for scripts instead of a table")
	cmd.PersistentFlags().StringVar(&o.namesrv, "namesrv", "", namesrvFlagHelp("name servers"))
	list := &cobra.Command{
		Use:   "list",
		Short: "List every cluster's master brokers and how each is doing",
		Long: `List the clusters the name server knows (GET_BROKER_CLUSTER_INFO, as mqadmin
clusterList) and, for each master broker, its running figures
(GET_BROKER_RUNTIME_INFO, as mqadmin brokerStatus): version, uptime,
messages stored by sends and returned by pulls since it started and a
second over the last 10 s (IN/S, OUT/S: clusterList's InTPS, OutTPS), its
disk's use (FULL when it refuses sends, store.diskFullRatio), how far
dispatch is behind the commit log, and its open transactions. A broker
that does not answer is listed with the error, and the command fails.
--json prints every figure the broker reports.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			masters, err := clusterMasters(ctx, cmd, &o)
			if err != nil {
				return err
			}
			rows := []clusterBroker{}
			failed := 0
			for _, m := range masters {
				row := clusterBroker{Cluster: m.Cluster, Broker: m.Broker, Addr: m.Addr}
				if m.Addr == "" {
					row.Error = errNoMaster.Error()
					failed++
				} else if row.Runtime, err = askBroker(ctx, m.Addr, (*admin.Client).RuntimeInfo); err != nil {
					row.Error = err.Error()
					failed++
				}
				rows = append(rows, row)
			}
			err = o.print(cmd, rows, func(w io.Writer) {
				fmt.Fprintln(w, "CLUSTER\tBROKER\tADDRESS\tVERSION\tUPTIME\tSTORED\tPULLED\tIN/S\tOUT/S\tDISK\tBEHIND\tOPEN TXNS")
				for _, r := range rows {
					if r.Error != "" {
						fmt.Fprintf(w, "%s\t%s\t%s\terror: %s\n", r.Cluster, r.Broker, r.Addr, r.Error)
						continue
					}
					rt := r.Runtime
					disk := rt["commitLogDiskRatio"]
					if f, err := strconv.ParseFloat(disk, 64); err == nil {
						disk = fmt.Sprintf("%.0f%%", f*100)
					}
					if rt["halfbackDiskFull"] == "true" {
						disk += " FULL"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s B\t%s\n", r.Cluster, r.Broker, r.Addr, rt["brokerVersionDesc"],
						uptime(rt["bootTimestamp"]), rt["putMessageTimesTotal"], rt["halfbackGetMessageTotal"],
						firstRate(rt["putTps"]), firstRate(rt["getTransferredTps"]), disk,
						rt["dispatchBehindBytes"], rt["halfbackTransactionsPending"])
				}
			})
			if err == nil && failed > 0 {
				err = fmt.Errorf("%d of %d brokers did not answer", failed, len(rows))
			}
			return err
		},
	}
	cmd.AddCommand(list, newClusterConfigCmd(&o), newWritePermCmd(&o, true), newWritePermCmd(&o, false))
	return cmd
}

// brokerConfig is one broker's settings, as `cluster config` prints them.
type brokerConfig struct {
	Cluster string            `json:"cluster,omitempty"`
	Broker  string            `json:"brokerName,omitempty"`
	Addr    string            `json:"addr"`
	Config  map[string]string `json:"config,omitempty"`
	Error   string            `json:"error,omitempty"`
}

func newClusterConfigCmd(o *adminOpts) *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "config [--broker ADDR]",
		Short: "Show the settings each master broker runs with (mqadmin getBrokerConfig)",
		Long: `Show the settings each master broker of every cluster the name server knows
runs with (GET_BROKER_CONFIG, as mqadmin getBrokerConfig), or only the
broker at --broker ADDR: RocketMQ's BrokerConfig and MessageStoreConfig
names and units (flushDiskType, syncFlushTimeout in ms, fileReservedTime
in hours, diskMaxUsedSpaceRatio in percent, messageDelayLevel, ...) and
halfback's own settings prefixed "halfback". A halfback broker takes them
from config.yaml and the environment at start; they do not change while it
runs. A broker that does not answer is listed with the error, and the
command fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			var rows []brokerConfig
			if addr != "" {
				rows = []brokerConfig{{Addr: addr}}
			} else {
				masters, err := clusterMasters(ctx, cmd, o)
				if err != nil {
					return err
				}
				for _, m := range masters {
					rows = append(rows, brokerConfig{Cluster: m.Cluster, Broker: m.Broker, Addr: m.Addr})
				}
			}
			failed := 0
			for i := range rows {
				r := &rows[i]
				var err error
				if r.Addr == "" {
					err = errNoMaster
				} else {
					r.Config, err = askBroker(ctx, r.Addr, (*admin.Client).BrokerConfig)
				}
				if err != nil {
					r.Error, failed = err.Error(), failed+1
				}
			}
			err := o.print(cmd, rows, func(w io.Writer) {
				for _, r := range rows {
					fmt.Fprintf(w, "== %s\n", strings.TrimSpace(strings.Join([]string{r.Cluster, r.Broker, r.Addr}, " ")))
					if r.Error != "" {
						fmt.Fprintf(w, "error: %s\n", r.Error)
						continue
					}
					for _, k := range slices.Sorted(maps.Keys(r.Config)) {
						fmt.Fprintf(w, "%s\t%s\n", k, r.Config[k])
					}
				}
			})
			if err == nil && failed > 0 {
				err = fmt.Errorf("%d of %d brokers did not answer", failed, len(rows))
			}
			return err
		},
	}
	cmd.Flags().StringVar(&addr, "broker", "", "only the broker at this address, host:port (no name server needed)")
	return cmd
}

// newWritePermCmd is `cluster wipe-write-perm` (wipe) or `cluster
// add-write-perm`: mqadmin's wipeWritePerm and addWritePerm.
func newWritePermCmd(o *adminOpts, wipe bool) *cobra.Command {
	use, short, long := "add-write-perm BROKER_NAME", "Let producers send to a broker group again (mqadmin addWritePerm)",
		`Give every topic of the broker group BROKER_NAME its write permission back
in the routes of each name server (ADD_WRITE_PERM_OF_BROKER, as mqadmin
addWritePerm), after wipe-write-perm.`
	if wipe {
		use, short, long = "wipe-write-perm BROKER_NAME", "Stop producers sending to a broker group, consumers still reading it (mqadmin wipeWritePerm)",
			`Take the write permission off every topic of the broker group BROKER_NAME in
the routes of each name server (WIPE_WRITE_PERM_OF_BROKER, as mqadmin
wipeWritePerm): producers stop sending to it within their route refresh
(30 s) while consumers keep reading what it holds, so that it can be
stopped once drained. No new topic is created on it meanwhile. As with
RocketMQ, the wipe lasts until the broker's topic table changes (a topic
created, updated or deleted on it makes it register the table again) or
the name server restarts; add-write-perm ends it.`
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long: long + `
The command fails if a name server does not answer, or if none of them
routes any topic of BROKER_NAME (a misspelt name: cluster list shows them).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, err := o.namesrvAddrs(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			res, err := admin.SetWritePerm(ctx, ns, args[0], wipe)
			if res == nil {
				return err
			}
			if perr := o.print(cmd, res, func(w io.Writer) {
				fmt.Fprintln(w, "NAME SERVER\tTOPICS CHANGED")
				for _, r := range res {
					if r.Error != "" {
						fmt.Fprintf(w, "%s\terror: %s\n", r.Namesrv, r.Error)
						continue
					}
					fmt.Fprintf(w, "%s\t%d\n", r.Namesrv, r.Topics)
				}
			}); perr != nil {
				return perr
			}
			if err != nil {
				return err
			}
			for _, r := range res {
				if r.Topics > 0 {
					return nil
				}
			}
			return fmt.Errorf("no name server routes a topic of broker %q: is the name right? (halfback cluster list shows the brokers)", args[0])
		},
	}
}

// clusterMaster is a broker group a name server knows, with its master's
// address ("" when none is registered).
type clusterMaster struct{ Cluster, Broker, Addr string }

// errNoMaster is a broker group's error when no master is registered.
var errNoMaster = errors.New("no master registered with the name server")

// clusterMasters lists the broker groups the name servers of o know, by
// cluster and broker name.
func clusterMasters(ctx context.Context, cmd *cobra.Command, o *adminOpts) ([]clusterMaster, error) {
	ns, err := o.namesrvAddrs(cmd)
	if err != nil {
		return nil, err
	}
	clusters, _, err := admin.Clusters(ctx, ns)
	if err != nil {
		return nil, err
	}
	var out []clusterMaster
	for _, c := range slices.Sorted(maps.Keys(clusters)) {
		for _, b := range clusters[c] {
			out = append(out, clusterMaster{Cluster: c, Broker: b.Name, Addr: b.Addr})
		}
	}
	return out, nil
}

// askBroker dials the broker at addr and asks it one thing.
func askBroker[T any](ctx context.Context, addr string, ask func(*admin.Client, context.Context) (T, error)) (T, error) {
	c, err := admin.Dial(ctx, addr)
	if err != nil {
		var zero T
		return zero, err
	}
	defer c.Close()
	return ask(c, ctx)
}

// firstRate is the first of a putTps or getTransferredTps figure's
// three rates (the last 10 s), "-" if there is none.
func firstRate(tps string) string {
	if f := strings.Fields(tps); len(f) > 0 {
		return f[0]
	}
	return "-"
}

// uptime turns a bootTimestamp (Unix ms) into a duration to the second.
func uptime(boot string) string {
	ms, err := strconv.ParseInt(boot, 10, 64)
	if err != nil || ms <= 0 {
		return "-"
	}
	return time.Since(time.UnixMilli(ms)).Round(time.Second).String()
}
