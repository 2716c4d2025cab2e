package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	temporalclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	tlog "go.temporal.io/sdk/log"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/orders"
)

// DefaultConfig is the config file read when --config is not given; it
// may be missing (built-in defaults and HALFBACK_* apply).
const DefaultConfig = "config.yaml"

// ConfigFlag registers --config on fs and returns a function that loads
// the file it names. A file named explicitly must exist; the default may
// be missing; "" means defaults and environment only.
func ConfigFlag(fs *flag.FlagSet) func() (*config.Config, error) {
	path := fs.String("config", DefaultConfig,
		`config file; if the default is missing, built-in defaults apply; "" means defaults only`)
	return func() (*config.Config, error) {
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
		return LoadConfig(*path, explicit)
	}
}

// LoadConfig loads path with [config.Load]. Unless explicit, a missing
// path means built-in defaults.
func LoadConfig(path string, explicit bool) (*config.Config, error) {
	if !explicit {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			path = ""
		}
	}
	return config.Load(path)
}

// NewLogger returns the text logger the commands log through.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// DialTemporal connects to temporal.hostPort in temporal.namespace, with
// interceptors (the tracing one, say) on the client. The SDK logs through
// log.
func DialTemporal(ctx context.Context, cfg *config.Config, log *slog.Logger,
	interceptors ...interceptor.ClientInterceptor) (temporalclient.Client, error) {
	c, err := temporalclient.DialContext(ctx, temporalclient.Options{
		HostPort:     cfg.Temporal.HostPort,
		Namespace:    cfg.Temporal.Namespace,
		Logger:       tlog.NewStructuredLogger(log),
		Interceptors: interceptors,
	})
	if err != nil {
		return nil, fmt.Errorf("dial Temporal at %s (temporal.hostPort), namespace %s: %w",
			cfg.Temporal.HostPort, cfg.Temporal.Namespace, err)
	}
	return c, nil
}

// NamesrvAddrs returns the name servers a client of this config's broker
// asks for routes: namesrv.listenAddr when the worker embeds the broker
// and the broker embeds the name server (a wildcard host read as
// loopback), else broker.namesrvAddr split on ';'.
func NamesrvAddrs(cfg *config.Config) []string {
	if cfg.Worker.EmbeddedBroker {
		return BrokerNamesrvAddrs(cfg)
	}
	return splitNamesrvAddrs(cfg.Broker.NamesrvAddr)
}

// BrokerNamesrvAddrs returns the name servers `halfback broker` of this
// config registers with, where the halfback commands (cluster list,
// --cluster, mirror) find it: namesrv.listenAddr with namesrv.embedded (a
// wildcard host read as loopback; the broker does not read
// broker.namesrvAddr then), else broker.namesrvAddr split on ';'.
func BrokerNamesrvAddrs(cfg *config.Config) []string {
	if cfg.Namesrv.Embedded {
		return []string{dialable(cfg.Namesrv.ListenAddr)}
	}
	return splitNamesrvAddrs(cfg.Broker.NamesrvAddr)
}

// splitNamesrvAddrs splits a ';'-separated list of name servers.
func splitNamesrvAddrs(s string) []string {
	var out []string
	for a := range strings.SplitSeq(s, ";") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// dialable turns a listen address into one to dial: an empty or
// unspecified host becomes 127.0.0.1.
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// NewClient returns a halfback client of the name servers nsAddrs.
func NewClient(nsAddrs []string, log *slog.Logger) (*client.Client, error) {
	c, err := client.New(client.Options{NamesrvAddrs: nsAddrs, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("halfback client of %s: %w", strings.Join(nsAddrs, ";"), err)
	}
	return c, nil
}

// OrdersOptions returns the order database's options: orders.driver and
// [config.Config.OrdersDSN].
func OrdersOptions(cfg *config.Config) orders.Options {
	return orders.Options{Driver: cfg.Orders.Driver, DSN: cfg.OrdersDSN()}
}

// ErrNoOrdersDB is OpenWorkerOrders' error when the order database the
// config names does not exist.
var ErrNoOrdersDB = errors.New("no order database")

// OpenWorkerOrders opens the order database of a running worker, for the
// samples that read or seed it (the starter, the payer): when the DSN is
// the derived one in store.dataDir and no database is there, it fails with
// ErrNoOrdersDB rather than create an empty one beside the worker's (a
// shell without the demo's HALFBACK_STORE_DATADIR, say), where the
// starter's stock would be seeded and the payer would find no order.
func OpenWorkerOrders(ctx context.Context, cfg *config.Config) (*orders.DB, error) {
	if strings.TrimSpace(cfg.Orders.DSN) == "" {
		path := filepath.Join(cfg.Store.DataDir, config.OrdersFile)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w at %s: start the worker first, or set store.dataDir (HALFBACK_STORE_DATADIR) to the worker's",
				ErrNoOrdersDB, path)
		}
	}
	return OpenOrders(ctx, cfg)
}

// OpenOrders opens the order database, creating store.dataDir first when
// the DSN is the derived one that lives there.
func OpenOrders(ctx context.Context, cfg *config.Config) (*orders.DB, error) {
	if strings.TrimSpace(cfg.Orders.DSN) == "" {
		if err := os.MkdirAll(cfg.Store.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("orders database directory (store.dataDir): %w", err)
		}
	}
	// Name the key to fix: orders.dsn, or store.dataDir for the derived DSN.
	key := "orders.dsn"
	if strings.TrimSpace(cfg.Orders.DSN) == "" {
		key = "store.dataDir"
	}
	db, err := orders.Open(ctx, OrdersOptions(cfg))
	if err != nil {
		return nil, fmt.Errorf("open orders database %s (%s): %w", cfg.OrdersDSN(), key, err)
	}
	return db, nil
}
