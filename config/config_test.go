package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/delay"
	"gopkg.in/yaml.v3"
)

// clearEnv unsets, for the length of the test, every override of a known
// key and every other variable whose name starts with HALFBACK_ in any
// case. Setting one to "" would not do: that is an override to "".
func clearEnv(t *testing.T) {
	t.Helper()
	names := map[string]bool{}
	for _, k := range keys {
		names[envName(k.path)] = true
	}
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(strings.ToUpper(name), EnvPrefix+"_") {
			names[name] = true
		}
	}
	for name := range names {
		unsetEnv(t, name)
	}
}

// unsetEnv unsets the variable name until the test ends, then restores it.
func unsetEnv(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "") // registers the restore, and forbids t.Parallel
	if err := os.Unsetenv(name); err != nil {
		t.Fatal(err)
	}
}

// writeConfig writes body to a config file in a fresh temporary directory.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestShippedConfigLoads(t *testing.T) {
	clearEnv(t)
	cfg, err := Load(filepath.Join("..", "config.yaml"))
	if err != nil {
		t.Fatalf("Load(config.yaml): %v", err)
	}
	opts, err := cfg.StoreOptions()
	if err != nil {
		t.Fatalf("StoreOptions: %v", err)
	}
	if opts.FlushType != store.SyncFlush {
		t.Errorf("shipped flush type = %v, want SYNC_FLUSH", opts.FlushType)
	}
	// config.yaml says its values are the defaults; hold it to that.
	defaults, err := Load("")
	if err != nil {
		t.Fatalf("Load(\"\"): %v", err)
	}
	if !reflect.DeepEqual(cfg, defaults) {
		t.Errorf("config.yaml differs from the built-in defaults:\n file:     %+v\n defaults: %+v", cfg, defaults)
	}
}

// TestShippedConfigListsEveryKey keeps config.yaml complete: a new key must
// be documented there, under its own section.
func TestShippedConfigListsEveryKey(t *testing.T) {
	for _, path := range unlistedKeys(shippedConfig(t)) {
		t.Errorf("config.yaml does not list %s", path)
	}
}

// TestUnlistedKeysFindsEachKey deletes each key in turn from the parsed
// config.yaml: the check must report that key and no other, even where
// another section has a key of the same name (broker.listenAddr and
// namesrv.listenAddr, mirror.kafka.enabled and mirror.kafka.tls.enabled).
func TestUnlistedKeysFindsEachKey(t *testing.T) {
	for _, k := range keys {
		doc := shippedConfig(t)
		parts := strings.Split(k.path, ".")
		m := doc
		for _, p := range parts[:len(parts)-1] {
			m = m[p].(map[string]any)
		}
		delete(m, parts[len(parts)-1])
		if got := unlistedKeys(doc); !slices.Equal(got, []string{k.path}) {
			t.Errorf("config.yaml without %s: unlisted keys %v, want [%s]", k.path, got, k.path)
		}
	}
}

// shippedConfig parses config.yaml.
func shippedConfig(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// unlistedKeys returns the known keys that doc, a parsed config file, does
// not hold at their own path, spelled exactly as the keys table spells them.
func unlistedKeys(doc map[string]any) []string {
	var missing []string
	for _, k := range keys {
		if !hasKey(doc, strings.Split(k.path, ".")) {
			missing = append(missing, k.path)
		}
	}
	return missing
}

// hasKey reports whether m holds a value (not a mapping) at path.
func hasKey(m map[string]any, path []string) bool {
	v, ok := m[path[0]]
	if !ok {
		return false
	}
	sub, isMap := v.(map[string]any)
	if len(path) == 1 {
		return !isMap
	}
	return isMap && hasKey(sub, path[1:])
}

func TestDefaults(t *testing.T) {
	clearEnv(t)
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Store: StoreConfig{
			DataDir:              "./data",
			FlushType:            "SYNC_FLUSH",
			SegmentSize:          1 << 30,
			SyncFlushTimeout:     5 * time.Second,
			FlushIntervalMs:      500,
			CheckpointIntervalMs: 1000,
			QueueEntriesPerFile:  300000,
			FileReservedHours:    72,
			DiskMaxUsedRatio:     0.85,
			DiskFullRatio:        0.9,
			MaxMessageSize:       4 << 20,
		},
		Broker: BrokerConfig{ListenAddr: "127.0.0.1:10911", BrokerName: "broker-a", ClusterName: "DefaultCluster",
			NamesrvAddr: "127.0.0.1:9876",
			DelayLevels: delay.DefaultLevels, TimerMaxDelay: 72 * time.Hour,
			AutoCreateTopicEnable: true, AutoCreateSubscriptionGroup: true, EnablePropertyFilter: true, DefaultTopicQueueNums: 4,
			AccessMessageInMemoryMaxRatio: 0.4, MaxInFlightBytes: 512 << 20,
			UseServerSideResetOffset: true,
			TransactionTimeout:       6 * time.Second, TransactionCheckInterval: 30 * time.Second, TransactionCheckMax: 15},
		Namesrv:   NamesrvConfig{ListenAddr: "127.0.0.1:9876", Embedded: true},
		Log:       LogConfig{Level: "info"},
		Temporal:  TemporalConfig{HostPort: "localhost:7233", Namespace: "default", TaskQueue: "order-payment"},
		Payment:   PaymentConfig{CheckLevel: 5, MaxChecks: 10},
		Orders:    OrdersConfig{Driver: "sqlite"},
		Worker:    WorkerConfig{EmbeddedBroker: true},
		Telemetry: TelemetryConfig{Exporter: "none", Protocol: "grpc", SampleRatio: 1},
		Mirror: MirrorConfig{Kafka: KafkaMirrorConfig{Group: "halfback-mirror-kafka", ClientID: "halfback-mirror",
			Version: "2.8.0", RequiredAcks: "all", Compression: "none", StartFrom: "last", BatchSize: 32,
			MinBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second, DialTimeout: 5 * time.Second,
			ProduceTimeout: 10 * time.Second, MaxMessageBytes: 1_000_000}},
	}
	if *cfg != want {
		t.Errorf("defaults:\n got  %+v\n want %+v", *cfg, want)
	}
}

func TestEnvOverridesFile(t *testing.T) {
	clearEnv(t)
	path := writeConfig(t, "store:\n  flushType: SYNC_FLUSH\n  dataDir: /from/file\n")
	t.Setenv("HALFBACK_STORE_FLUSHTYPE", "async")
	// Keys absent from the file are overridable too.
	t.Setenv("HALFBACK_STORE_SEGMENTSIZE", "1048576")
	t.Setenv("HALFBACK_STORE_MAXMESSAGESIZE", "65536")
	t.Setenv("HALFBACK_STORE_SYNCFLUSHTIMEOUT", "250ms")
	t.Setenv("HALFBACK_STORE_DISKMAXUSEDRATIO", "0.5")
	t.Setenv("HALFBACK_LOG_LEVEL", "debug")
	// Not an override: its second word is no section.
	t.Setenv("HALFBACK_TEST_LOG", "1")

	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Store
	if s.FlushType != "async" || s.SegmentSize != 1048576 || s.MaxMessageSize != 65536 ||
		s.SyncFlushTimeout != 250*time.Millisecond || s.DiskMaxUsedRatio != 0.5 {
		t.Errorf("env not applied: %+v", s)
	}
	if s.DataDir != "/from/file" {
		t.Errorf("dataDir = %q, want the file's /from/file", s.DataDir)
	}
	if cfg.Log.SlogLevel() != slog.LevelDebug {
		t.Errorf("log level = %v, want debug", cfg.Log.SlogLevel())
	}
	opts, err := cfg.StoreOptions()
	if err != nil {
		t.Fatal(err)
	}
	if opts.FlushType != store.AsyncFlush {
		t.Errorf("FlushType = %v, want ASYNC_FLUSH", opts.FlushType)
	}
}

func TestKeysAreCaseInsensitive(t *testing.T) {
	clearEnv(t)
	cfg, err := Load(writeConfig(t, "STORE:\n  FLUSHTYPE: async\nLog:\n  Level: WARN\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.FlushType != "async" || cfg.Log.SlogLevel() != slog.LevelWarn {
		t.Errorf("got %+v", cfg)
	}
}

func TestEmptyFileAndSectionMeanDefaults(t *testing.T) {
	clearEnv(t)
	for _, body := range []string{"", "# nothing\n", "store:\n"} {
		if _, err := Load(writeConfig(t, body)); err != nil {
			t.Errorf("Load(%q): %v", body, err)
		}
	}
}

func TestBadValues(t *testing.T) {
	tests := []struct {
		name    string
		file    string            // config.yaml body
		env     map[string]string // overrides
		wantMsg string            // substring of the error
		wantErr error             // errors.Is target
	}{
		{"unknown flushType", "store:\n  flushType: bogus\n",
			nil, `config: store.flushType: unknown flush type "bogus"`, ErrInvalid},
		{"negative segmentSize", "store:\n  segmentSize: -5\n",
			nil, "config: store.segmentSize: must not be negative (got -5)", ErrInvalid},
		{"segmentSize not a number", "store:\n  segmentSize: abc\n",
			nil, `config: store.segmentSize: cannot use "abc": want a whole number of bytes`, ErrInvalid},
		{"segmentSize fraction", "store:\n  segmentSize: 1.5\n",
			nil, "config: store.segmentSize: cannot use 1.5", ErrInvalid},
		{"segment smaller than a message", "store:\n  segmentSize: 1048576\n",
			nil, "config: store.segmentSize: 1048576 cannot hold a message of store.maxMessageSize 4194304", store.ErrInvalidOptions},
		{"unknown key", "store:\n  segmentSizee: 5\n",
			nil, "config: store.segmentSizee: unknown key", ErrUnknownKey},
		{"unknown section", "bogus:\n  x: 1\n",
			nil, "config: bogus: unknown section", ErrUnknownKey},
		{"section not a mapping", "store: 5\n",
			nil, "config: store: must be a mapping of keys", ErrInvalid},
		{"key given twice", "store:\n  segmentSize: 1\n  SegmentSize: 2\n",
			nil, "given twice", ErrInvalid},
		{"bad duration", "store:\n  syncFlushTimeout: 5 parsecs\n",
			nil, `config: store.syncFlushTimeout: cannot use "5 parsecs": want a duration`, ErrInvalid},
		{"duration without unit", "store:\n  syncFlushTimeout: 5\n",
			nil, "config: store.syncFlushTimeout: cannot use 5", ErrInvalid},
		{"negative duration", "store:\n  syncFlushTimeout: -1s\n",
			nil, "config: store.syncFlushTimeout: must not be negative (got -1s)", ErrInvalid},
		{"negative interval", "store:\n  flushIntervalMs: -1\n",
			nil, "config: store.flushIntervalMs: must not be negative", ErrInvalid},
		{"message size above the frame", "store:\n  maxMessageSize: 33554432\n",
			nil, "config: store.maxMessageSize: must be at most 15728640 (got 33554432)", ErrInvalid},
		{"ratio above 1", "store:\n  diskMaxUsedRatio: 1.5\n",
			nil, "config: store.diskMaxUsedRatio: must be between 0 and 1 (got 1.5)", ErrInvalid},
		{"full ratio below 0", "store:\n  diskFullRatio: -0.1\n",
			nil, "config: store.diskFullRatio: must be between 0 and 1 (got -0.1)", ErrInvalid},
		{"in-memory ratio as a percentage", "broker:\n  accessMessageInMemoryMaxRatio: 40\n",
			nil, "config: broker.accessMessageInMemoryMaxRatio: must be between 0 and 1 (got 40)", ErrInvalid},
		{"in-flight bytes below a frame", "broker:\n  maxInFlightBytes: 1048576\n",
			nil, "config: broker.maxInFlightBytes: must be at least 16777216, or 0 for the default (got 1048576)", ErrInvalid},
		{"negative in-flight bytes", "",
			map[string]string{"HALFBACK_BROKER_MAXINFLIGHTBYTES": "-5"}, "config: broker.maxInFlightBytes: must be at least 16777216", ErrInvalid},
		{"empty dataDir", "store:\n  dataDir: \"\"\n",
			nil, "config: store.dataDir: must not be empty", ErrInvalid},
		{"listen address without port", "broker:\n  listenAddr: localhost\n",
			nil, "config: broker.listenAddr: want host:port", ErrInvalid},
		{"listen port out of range", "broker:\n  listenAddr: 127.0.0.1:99999\n",
			nil, "config: broker.listenAddr: port", ErrInvalid},
		{"advertised address on every interface", "broker:\n  advertiseAddr: 0.0.0.0:10911\n",
			nil, `config: broker.advertiseAddr: "0.0.0.0:10911": 0.0.0.0 means every interface`, ErrInvalid},
		{"advertised address without host", "broker:\n  advertiseAddr: :10911\n",
			nil, `config: broker.advertiseAddr: ":10911": no host`, ErrInvalid},
		{"advertised port 0", "broker:\n  advertiseAddr: 10.0.0.5:0\n",
			nil, `config: broker.advertiseAddr: "10.0.0.5:0": port "0"`, ErrInvalid},
		{"broker name with a space", "broker:\n  brokerName: broker a\n",
			nil, `config: broker.brokerName: "broker a": illegal character ' '`, ErrInvalid},
		{"empty cluster name", "broker:\n  clusterName: \"\"\n",
			nil, `config: broker.clusterName: "": want 1 to 127 characters`, ErrInvalid},
		{"name server list entry bad", "broker:\n  namesrvAddr: a:9876;b\n",
			nil, "config: broker.namesrvAddr: want host:port", ErrInvalid},
		{"name server listen address without port", "namesrv:\n  listenAddr: localhost\n",
			nil, "config: namesrv.listenAddr: want host:port", ErrInvalid},
		{"zero transaction timeout", "broker:\n  transactionTimeout: 0s\n",
			nil, "config: broker.transactionTimeout: must be greater than zero (got 0s)", ErrInvalid},
		{"negative check interval", "broker:\n  transactionCheckInterval: -30s\n",
			nil, "config: broker.transactionCheckInterval: must be greater than zero", ErrInvalid},
		{"zero max checks", "broker:\n  transactionCheckMax: 0\n",
			nil, "config: broker.transactionCheckMax: must be greater than zero (got 0)", ErrInvalid},
		{"max checks not a number", "broker:\n  transactionCheckMax: many\n",
			nil, `config: broker.transactionCheckMax: cannot use "many"`, ErrInvalid},
		{"unknown log level", "log:\n  level: loud\n",
			nil, `config: log.level: unknown level "loud"`, ErrInvalid},
		{"temporal host without port", "temporal:\n  hostPort: localhost\n",
			nil, "config: temporal.hostPort: want host:port", ErrInvalid},
		{"temporal port 0", "temporal:\n  hostPort: localhost:0\n",
			nil, "config: temporal.hostPort: port 0", ErrInvalid},
		{"empty namespace", "temporal:\n  namespace: \"\"\n",
			nil, "config: temporal.namespace: must not be empty", ErrInvalid},
		{"task queue with a space", "temporal:\n  taskQueue: order payment\n",
			nil, "config: temporal.taskQueue: must not contain white space", ErrInvalid},
		{"check level 0", "payment:\n  checkLevel: 0\n",
			nil, "config: payment.checkLevel: must be a delay level from 1 to 18", ErrInvalid},
		{"check level past the last delay level", "broker:\n  delayLevels: 1s 2s 3s\npayment:\n  checkLevel: 4\n",
			nil, "config: payment.checkLevel: must be a delay level from 1 to 3", ErrInvalid},
		{"check level not a number", "payment:\n  checkLevel: 1m\n",
			nil, `config: payment.checkLevel: cannot use "1m": want a whole number`, ErrInvalid},
		{"zero max checks", "payment:\n  maxChecks: 0\n",
			nil, "config: payment.maxChecks: must be greater than zero (got 0)", ErrInvalid},
		{"max checks past the history bound", "payment:\n  maxChecks: 501\n",
			nil, "config: payment.maxChecks: must be at most 500 (got 501): each check adds about 18 events", ErrInvalid},
		{"env max checks past the history bound", "",
			map[string]string{"HALFBACK_PAYMENT_MAXCHECKS": "100000"},
			"config: payment.maxChecks: must be at most 500 (got 100000)", ErrInvalid},
		{"unknown orders driver", "orders:\n  driver: postgres\n",
			nil, `config: orders.driver: unknown driver "postgres" (want sqlite)`, ErrInvalid},
		{"embeddedBroker not a bool", "worker:\n  embeddedBroker: sometimes\n",
			nil, `config: worker.embeddedBroker: cannot use "sometimes": want true or false`, ErrInvalid},
		{"unknown worker key", "worker:\n  embedded: true\n",
			nil, "config: worker.embedded: unknown key", ErrUnknownKey},
		{"bad env max checks", "",
			map[string]string{"HALFBACK_PAYMENT_MAXCHECKS": "-1"},
			"config: payment.maxChecks: must be greater than zero (got -1)", ErrInvalid},
		{"bad env temporal host", "",
			map[string]string{"HALFBACK_TEMPORAL_HOSTPORT": "nowhere"},
			"config: temporal.hostPort: want host:port", ErrInvalid},
		{"bad env bool", "",
			map[string]string{"HALFBACK_WORKER_EMBEDDEDBROKER": "sometimes"},
			`config: worker.embeddedBroker: cannot use "sometimes": want true or false`, ErrInvalid},
		{"bad env value", "",
			map[string]string{"HALFBACK_STORE_SEGMENTSIZE": "-5"},
			"config: store.segmentSize: must not be negative (got -5)", ErrInvalid},
		{"bad env flush type", "store:\n  flushType: sync\n",
			map[string]string{"HALFBACK_STORE_FLUSHTYPE": "sometimes"},
			`config: store.flushType: unknown flush type "sometimes"`, ErrInvalid},
		{"bad env duration", "",
			map[string]string{"HALFBACK_STORE_SYNCFLUSHTIMEOUT": "soon"},
			"config: store.syncFlushTimeout: cannot use", ErrInvalid},
		{"misspelled env override", "",
			map[string]string{"HALFBACK_STORE_FLUSHTYP": "async"},
			"config: HALFBACK_STORE_FLUSHTYP: environment variable names no key of section store", ErrUnknownKey},
		{"env override of a nested key misspelled", "",
			map[string]string{"HALFBACK_MIRROR_KAFKA_BROKER": "k:9092"},
			"config: HALFBACK_MIRROR_KAFKA_BROKER: environment variable names no key of section mirror", ErrUnknownKey},
		{"not YAML", "store: [\n", nil, "config: bad YAML", ErrSyntax},
		{"not a mapping", "- a\n- b\n", nil, "config: bad YAML", ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := Load(writeConfig(t, tt.file))
			if err == nil {
				t.Fatalf("Load succeeded with %+v, want an error containing %q", cfg, tt.wantMsg)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q is not %v", err, tt.wantErr)
			}
		})
	}
}

func TestKeyErrorNamesKey(t *testing.T) {
	clearEnv(t)
	_, err := Load(writeConfig(t, "store:\n  diskMaxUsedRatio: 1.5\n"))
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Key != "store.diskMaxUsedRatio" {
		t.Fatalf("error %v: want a *KeyError for store.diskMaxUsedRatio", err)
	}
}

func TestMissingFile(t *testing.T) {
	clearEnv(t)
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error %v: want fs.ErrNotExist", err)
	}
}

func TestStoreOptions(t *testing.T) {
	cfg := Config{
		Store: StoreConfig{
			DataDir:              "/d",
			FlushType:            "ASYNC_FLUSH",
			SegmentSize:          64 << 20,
			SyncFlushTimeout:     2 * time.Second,
			FlushIntervalMs:      200,
			CheckpointIntervalMs: 3000,
			QueueEntriesPerFile:  1000,
			FileReservedHours:    48,
			DiskMaxUsedRatio:     0.9,
			DiskFullRatio:        0.95,
			MaxMessageSize:       1 << 20,
		},
		Broker: BrokerConfig{ListenAddr: "10.1.2.3:10911", BrokerName: "broker-b", ClusterName: "orders",
			NamesrvAddr: "10.1.2.3:9876",
			DelayLevels: "1s 2m 1d", TimerMaxDelay: time.Hour, DefaultTopicQueueNums: 8,
			TransactionTimeout: time.Second, TransactionCheckInterval: 2 * time.Second, TransactionCheckMax: 3},
		Namesrv:  NamesrvConfig{ListenAddr: "10.1.2.3:9876"},
		Log:      LogConfig{Level: "info"},
		Temporal: TemporalConfig{HostPort: "temporal:7233", Namespace: "orders", TaskQueue: "q"},
		Payment:  PaymentConfig{CheckLevel: 3, MaxChecks: 1},
		Orders:   OrdersConfig{Driver: "sqlite"},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	got, err := cfg.StoreOptions()
	if err != nil {
		t.Fatal(err)
	}
	want := store.Options{
		Dir:                 "/d",
		FlushType:           store.AsyncFlush,
		SegmentSize:         64 << 20,
		SyncFlushTimeout:    2 * time.Second,
		FlushInterval:       200 * time.Millisecond,
		CheckpointInterval:  3 * time.Second,
		QueueEntriesPerFile: 1000,
		FileReserved:        48 * time.Hour,
		DiskMaxUsedRatio:    0.9,
		DiskFullRatio:       0.95,
		MaxMessageSize:      1 << 20,
		StoreHost:           netip.MustParseAddrPort("10.1.2.3:10911"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("StoreOptions:\n got  %+v\n want %+v", got, want)
	}
	bo, err := cfg.BrokerOptions()
	if err != nil {
		t.Fatal(err)
	}
	if wantTxn := (txn.Options{Dir: "/d/txn", Timeout: time.Second, CheckInterval: 2 * time.Second, CheckMax: 3,
		CheckpointInterval: 3 * time.Second}); !reflect.DeepEqual(bo.Txn, wantTxn) {
		t.Errorf("BrokerOptions.Txn:\n got  %+v\n want %+v", bo.Txn, wantTxn)
	}

	if bo.BrokerName != "broker-b" || bo.ClusterName != "orders" || bo.AdvertiseAddr != "" {
		t.Errorf("BrokerOptions: name %q, cluster %q, advertise %q", bo.BrokerName, bo.ClusterName, bo.AdvertiseAddr)
	}

	// A wildcard listen address is no host to put in message ids; the
	// address advertised is.
	cfg.Broker.ListenAddr = "0.0.0.0:10911"
	if got, err = cfg.StoreOptions(); err != nil || got.StoreHost.IsValid() {
		t.Errorf("wildcard listenAddr: StoreHost %v, err %v; want unset", got.StoreHost, err)
	}
	cfg.Broker.AdvertiseAddr = "10.9.8.7:10911"
	if got, err = cfg.StoreOptions(); err != nil || got.StoreHost != netip.MustParseAddrPort("10.9.8.7:10911") {
		t.Errorf("advertiseAddr: StoreHost %v, err %v; want 10.9.8.7:10911", got.StoreHost, err)
	}
	if bo, err = cfg.BrokerOptions(); err != nil || bo.AdvertiseAddr != "10.9.8.7:10911" {
		t.Errorf("advertiseAddr: BrokerOptions.AdvertiseAddr %q, err %v", bo.AdvertiseAddr, err)
	}

	cfg.Store.FlushType = "bogus"
	if _, err := cfg.StoreOptions(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "store.flushType") {
		t.Errorf("bad flush type: err %v", err)
	}
}

// TestKeysMatchStruct keeps the key table and the Config struct in step:
// every leaf field has exactly one key, whose path is the field's
// mapstructure tags and whose field func points at that field.
func TestKeysMatchStruct(t *testing.T) {
	var c Config
	fields := map[string]uintptr{} // path -> field address
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		for i := range v.NumField() {
			path := v.Type().Field(i).Tag.Get("mapstructure")
			if prefix != "" {
				path = prefix + "." + path
			}
			if f := v.Field(i); f.Kind() == reflect.Struct {
				walk(path, f)
			} else {
				fields[path] = f.Addr().Pointer()
			}
		}
	}
	walk("", reflect.ValueOf(&c).Elem())
	if len(keys) != len(fields) {
		t.Errorf("%d keys, %d struct fields", len(keys), len(fields))
	}
	for _, k := range keys {
		addr, ok := fields[k.path]
		if !ok {
			t.Errorf("key %s has no struct field", k.path)
			continue
		}
		if got := reflect.ValueOf(k.field(&c)).Pointer(); got != addr {
			t.Errorf("key %s: field func points at the wrong field", k.path)
		}
		if reflect.TypeOf(k.def) != reflect.TypeOf(k.field(&c)).Elem() {
			t.Errorf("key %s: default is %T, field is %s", k.path, k.def, reflect.TypeOf(k.field(&c)).Elem())
		}
	}
}

func TestSlogLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{
		"debug": slog.LevelDebug, "INFO": slog.LevelInfo, "warn": slog.LevelWarn, "Error": slog.LevelError, "loud": slog.LevelInfo,
	} {
		if got := (LogConfig{Level: in}).SlogLevel(); got != want {
			t.Errorf("SlogLevel(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestDelayOptions(t *testing.T) {
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Broker.DelayLevels = "1s 2m 1d"
	cfg.Broker.TimerMaxDelay = time.Hour
	got, err := cfg.DelayOptions()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Levels) != 3 || got.Levels[2] != 24*time.Hour || got.MaxDelay != time.Hour || got.Dir != filepath.Join(cfg.Store.DataDir, "delay") {
		t.Fatalf("DelayOptions = %+v", got)
	}
	for _, bad := range []string{"1s nope", "1s -5s", "0s", "d", strings.Repeat("1s ", delay.MaxLevels+1)} {
		t.Setenv("HALFBACK_BROKER_DELAYLEVELS", bad)
		if _, err := Load(""); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "broker.delayLevels") {
			t.Errorf("delayLevels %q: err = %v, want one naming broker.delayLevels", bad, err)
		}
	}
}

func TestNamesrvListenAddr(t *testing.T) {
	clearEnv(t)
	cfg, err := Load(writeConfig(t, "namesrv:\n  listenAddr: 0.0.0.0:19876\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Namesrv.ListenAddr != "0.0.0.0:19876" {
		t.Errorf("namesrv.listenAddr from file = %q", cfg.Namesrv.ListenAddr)
	}
	t.Setenv("HALFBACK_NAMESRV_LISTENADDR", "127.0.0.1:0")
	if cfg, err = Load(""); err != nil {
		t.Fatal(err)
	}
	if cfg.Namesrv.ListenAddr != "127.0.0.1:0" {
		t.Errorf("namesrv.listenAddr from the environment = %q, want 127.0.0.1:0 (port 0 is allowed)", cfg.Namesrv.ListenAddr)
	}
}

func TestBrokerOptions(t *testing.T) {
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Broker.NamesrvAddr = "127.0.0.1:9876; 127.0.0.1:9877"
	cfg.Broker.AutoCreateTopicEnable = false
	cfg.Broker.AutoCreateSubscriptionGroup = false
	cfg.Broker.DefaultTopicQueueNums = 8
	cfg.Broker.AccessMessageInMemoryMaxRatio = 0.25
	if o, err := cfg.BrokerOptions(); err != nil || o.ClientSideResetOffset {
		t.Fatalf("default reset: ClientSideResetOffset %v, %v; want false (server side, as RocketMQ 5)", o.ClientSideResetOffset, err)
	}
	cfg.Broker.UseServerSideResetOffset = false
	o, err := cfg.BrokerOptions()
	if err != nil {
		t.Fatal(err)
	}
	if !o.ClientSideResetOffset {
		t.Fatalf("broker.useServerSideResetOffset false: ClientSideResetOffset %v", o.ClientSideResetOffset)
	}
	if len(o.NamesrvAddrs) != 2 || o.NamesrvAddrs[1] != "127.0.0.1:9877" || !o.DisableAutoCreateTopic || !o.DisableAutoCreateSubscriptionGroup || o.DefaultQueueNums != 8 ||
		o.AccessMessageInMemoryMaxRatio != 0.25 || o.ListenAddr != "127.0.0.1:10911" || o.Store.Dir != "./data" || len(o.Delay.Levels) != 18 {
		t.Fatalf("BrokerOptions = %+v", o)
	}
	for _, bad := range []string{"0", "1025", "x"} {
		t.Setenv("HALFBACK_BROKER_DEFAULTTOPICQUEUENUMS", bad)
		if _, err := Load(""); err == nil || !strings.Contains(err.Error(), "broker.defaultTopicQueueNums") {
			t.Errorf("defaultTopicQueueNums %q: err = %v, want one naming the key", bad, err)
		}
	}
}

// payment.maxChecks may be as high as PaymentMaxChecksLimit.
func TestPaymentMaxChecksLimitLoads(t *testing.T) {
	clearEnv(t)
	cfg, err := Load(writeConfig(t, fmt.Sprintf("payment:\n  maxChecks: %d\n", PaymentMaxChecksLimit)))
	if err != nil || cfg.Payment.MaxChecks != PaymentMaxChecksLimit {
		t.Fatalf("maxChecks %d: %+v, %v", PaymentMaxChecksLimit, cfg, err)
	}
}

func TestWorkerSectionsFromFileAndEnv(t *testing.T) {
	clearEnv(t)
	path := writeConfig(t, "temporal:\n  hostPort: 127.0.0.1:17233\n  namespace: shop\n"+
		"payment:\n  checkLevel: 2\n  maxChecks: 3\nworker:\n  embeddedBroker: false\n")
	t.Setenv("HALFBACK_TEMPORAL_TASKQUEUE", "orders-q")
	t.Setenv("HALFBACK_ORDERS_DSN", "file:/tmp/x.db")
	t.Setenv("HALFBACK_PAYMENT_MAXCHECKS", "4")
	t.Setenv("HALFBACK_NAMESRV_EMBEDDED", "false")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{}
	want.Temporal = TemporalConfig{HostPort: "127.0.0.1:17233", Namespace: "shop", TaskQueue: "orders-q"}
	want.Payment = PaymentConfig{CheckLevel: 2, MaxChecks: 4}
	want.Orders = OrdersConfig{Driver: "sqlite", DSN: "file:/tmp/x.db"}
	if cfg.Temporal != want.Temporal || cfg.Payment != want.Payment || cfg.Orders != want.Orders || cfg.Worker.EmbeddedBroker {
		t.Errorf("got temporal %+v payment %+v orders %+v worker %+v", cfg.Temporal, cfg.Payment, cfg.Orders, cfg.Worker)
	}
	if cfg.Namesrv.Embedded {
		t.Error("HALFBACK_NAMESRV_EMBEDDED=false not applied")
	}
	t.Setenv("HALFBACK_WORKER_EMBEDDEDBROKER", "true")
	if cfg2, err := Load(path); err != nil || !cfg2.Worker.EmbeddedBroker {
		t.Errorf("HALFBACK_WORKER_EMBEDDEDBROKER=true over the file's false: %+v, %v", cfg2, err)
	}
	if got := cfg.OrdersDSN(); got != "file:/tmp/x.db" {
		t.Errorf("OrdersDSN() = %q, want orders.dsn as given", got)
	}
	if got := cfg.PaymentCheckDelay(); got != 5*time.Second {
		t.Errorf("PaymentCheckDelay() = %v, want level 2 of RocketMQ's levels, 5s", got)
	}
}

func TestOrdersDSNDefaultsToDataDir(t *testing.T) {
	clearEnv(t)
	t.Setenv("HALFBACK_STORE_DATADIR", "/var/lib/halfback")
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join("/var/lib/halfback", "orders.db") + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	if got := cfg.OrdersDSN(); got != want {
		t.Errorf("OrdersDSN() = %q, want %q", got, want)
	}
	if got := cfg.PaymentCheckDelay(); got != time.Minute {
		t.Errorf("default PaymentCheckDelay() = %v, want 1m (level 5)", got)
	}
	cfg.Payment.CheckLevel = 99
	if got := cfg.PaymentCheckDelay(); got != 0 {
		t.Errorf("PaymentCheckDelay() of a level past the last = %v, want 0", got)
	}
}

// TestDemoConfigLoads keeps the demo's config valid: payments time out
// within seconds there.
func TestDemoConfigLoads(t *testing.T) {
	clearEnv(t)
	cfg, err := Load(filepath.Join("..", "samples", "orderpayment", "demo.yaml"))
	if err != nil {
		t.Fatalf("Load(demo.yaml): %v", err)
	}
	if d := cfg.PaymentCheckDelay() * time.Duration(cfg.Payment.MaxChecks); d <= 0 || d > 20*time.Second {
		t.Errorf("demo payment time-out = %v, want at most 20s", d)
	}
	if !cfg.Worker.EmbeddedBroker {
		t.Error("the demo worker must embed the broker")
	}
}
