package app

import (
	"context"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/halfbackmq/halfback/config"
)

func defaults(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestNamesrvAddrs(t *testing.T) {
	cfg := defaults(t)
	cfg.Namesrv.ListenAddr = "0.0.0.0:19876"
	cfg.Broker.NamesrvAddr = "10.0.0.1:9876; 10.0.0.2:9876"
	for _, tt := range []struct {
		name           string
		worker, nsEmbd bool
		want           []string
	}{
		{"embedded broker and name server: the name server's listen address, dialable", true, true, []string{"127.0.0.1:19876"}},
		{"embedded broker, separate name servers", true, false, []string{"10.0.0.1:9876", "10.0.0.2:9876"}},
		{"remote broker", false, true, []string{"10.0.0.1:9876", "10.0.0.2:9876"}},
	} {
		cfg.Worker.EmbeddedBroker, cfg.Namesrv.Embedded = tt.worker, tt.nsEmbd
		if got := NamesrvAddrs(cfg); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// The halfback commands find `halfback broker`'s name server where that
// broker registers: its embedded one's listen address, whatever the
// worker section says.
func TestBrokerNamesrvAddrs(t *testing.T) {
	cfg := defaults(t)
	cfg.Namesrv.ListenAddr = "0.0.0.0:19876"
	cfg.Broker.NamesrvAddr = "10.0.0.1:9876; 10.0.0.2:9876"
	for _, worker := range []bool{true, false} {
		cfg.Worker.EmbeddedBroker = worker
		cfg.Namesrv.Embedded = true
		if got := BrokerNamesrvAddrs(cfg); !slices.Equal(got, []string{"127.0.0.1:19876"}) {
			t.Errorf("embedded name server (worker.embeddedBroker %v): %v, want its listen address", worker, got)
		}
		cfg.Namesrv.Embedded = false
		if got := BrokerNamesrvAddrs(cfg); !slices.Equal(got, []string{"10.0.0.1:9876", "10.0.0.2:9876"}) {
			t.Errorf("separate name servers (worker.embeddedBroker %v): %v, want broker.namesrvAddr", worker, got)
		}
	}
}

func TestDialable(t *testing.T) {
	for in, want := range map[string]string{
		":9876": "127.0.0.1:9876", "0.0.0.0:1": "127.0.0.1:1", "[::]:2": "127.0.0.1:2",
		"10.1.1.1:3": "10.1.1.1:3", "host:4": "host:4",
	} {
		if got := dialable(in); got != want {
			t.Errorf("dialable(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigFlag(t *testing.T) {
	t.Chdir(t.TempDir()) // no config.yaml here
	fs1 := flag.NewFlagSet("x", flag.ContinueOnError)
	load := ConfigFlag(fs1)
	if err := fs1.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := load(); err != nil {
		t.Errorf("missing default config.yaml: %v, want the built-in defaults", err)
	}

	fs2 := flag.NewFlagSet("x", flag.ContinueOnError)
	load = ConfigFlag(fs2)
	if err := fs2.Parse([]string{"--config", "nope.yaml"}); err != nil {
		t.Fatal(err)
	}
	if _, err := load(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing --config file: %v, want fs.ErrNotExist", err)
	}

	if err := os.WriteFile("my.yaml", []byte("payment:\n  maxChecks: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs3 := flag.NewFlagSet("x", flag.ContinueOnError)
	load = ConfigFlag(fs3)
	if err := fs3.Parse([]string{"--config", "my.yaml"}); err != nil {
		t.Fatal(err)
	}
	if cfg, err := load(); err != nil || cfg.Payment.MaxChecks != 2 {
		t.Errorf("--config my.yaml: %+v, %v", cfg, err)
	}
}

func TestOpenOrdersInDataDir(t *testing.T) {
	cfg := defaults(t)
	cfg.Store.DataDir = filepath.Join(t.TempDir(), "not", "yet")
	if o := OrdersOptions(cfg); o.Driver != "sqlite" || o.DSN != cfg.OrdersDSN() {
		t.Errorf("OrdersOptions = %+v", o)
	}
	db, err := OpenOrders(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := os.Stat(filepath.Join(cfg.Store.DataDir, config.OrdersFile)); err != nil {
		t.Errorf("orders.db not in store.dataDir: %v", err)
	}
}

// OpenWorkerOrders opens the worker's order database only: where there is
// none it fails with ErrNoOrdersDB and creates nothing.
func TestOpenWorkerOrdersNeedsTheWorkersDB(t *testing.T) {
	cfg := defaults(t)
	cfg.Store.DataDir = t.TempDir()
	path := filepath.Join(cfg.Store.DataDir, config.OrdersFile)
	if db, err := OpenWorkerOrders(context.Background(), cfg); !errors.Is(err, ErrNoOrdersDB) || !strings.Contains(err.Error(), path) {
		if db != nil {
			db.Close()
		}
		t.Fatalf("OpenWorkerOrders with no database: %v, want ErrNoOrdersDB naming %s", err, path)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenWorkerOrders made %s: %v", path, err)
	}
	db, err := OpenOrders(context.Background(), cfg) // the worker
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = OpenWorkerOrders(context.Background(), cfg)
	if err != nil {
		t.Fatalf("OpenWorkerOrders of the worker's database: %v", err)
	}
	db.Close()
}

// TestOpenOrdersErrorNamesTheKey: a database that cannot be opened is
// reported with the config key that named it.
func TestOpenOrdersErrorNamesTheKey(t *testing.T) {
	cfg := defaults(t)
	cfg.Store.DataDir = t.TempDir()
	cfg.Orders.DSN = filepath.Join(t.TempDir(), "missing", "orders.db")
	db, err := OpenOrders(context.Background(), cfg)
	if err == nil {
		db.Close()
		t.Fatal("OpenOrders of a DSN in a missing directory succeeded")
	}
	if !strings.Contains(err.Error(), "orders.dsn") {
		t.Errorf("OpenOrders: %v; want the error to name orders.dsn", err)
	}
}
