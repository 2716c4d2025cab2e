package config

import (
	"errors"
	"strings"
	"testing"
)

// TestEmptyEnvOverrides: a variable set to "" is an override to the empty
// value, validated like any other; only an unset one leaves the file's.
func TestEmptyEnvOverrides(t *testing.T) {
	clearEnv(t)
	path := writeConfig(t, "store:\n  flushType: ASYNC_FLUSH\n  dataDir: /from/file\n"+
		"broker:\n  advertiseAddr: 10.0.0.1:10911\norders:\n  dsn: file:/from/file.db\n"+
		"telemetry:\n  serviceName: from-file\n")

	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Orders.DSN != "file:/from/file.db" || cfg.Broker.AdvertiseAddr != "10.0.0.1:10911" ||
		cfg.Telemetry.ServiceName != "from-file" {
		t.Fatalf("unset variables: orders %+v, broker.advertiseAddr %q, telemetry.serviceName %q",
			cfg.Orders, cfg.Broker.AdvertiseAddr, cfg.Telemetry.ServiceName)
	}

	t.Setenv("HALFBACK_ORDERS_DSN", "")
	t.Setenv("HALFBACK_BROKER_ADVERTISEADDR", "")
	t.Setenv("HALFBACK_TELEMETRY_SERVICENAME", "")
	if cfg, err = Load(path); err != nil {
		t.Fatal(err)
	}
	if cfg.Orders.DSN != "" || cfg.Broker.AdvertiseAddr != "" || cfg.Telemetry.ServiceName != "" {
		t.Errorf("empty overrides not applied: orders.dsn %q, broker.advertiseAddr %q, telemetry.serviceName %q",
			cfg.Orders.DSN, cfg.Broker.AdvertiseAddr, cfg.Telemetry.ServiceName)
	}
	if cfg.Store.FlushType != "ASYNC_FLUSH" || cfg.Store.DataDir != "/from/file" {
		t.Errorf("keys with no override lost the file's values: %+v", cfg.Store)
	}

	for _, tt := range []struct{ name, wantMsg string }{
		{"HALFBACK_STORE_DATADIR", "config: store.dataDir: must not be empty"},
		{"HALFBACK_STORE_FLUSHTYPE", `config: store.flushType: unknown flush type ""`},
		{"HALFBACK_STORE_SEGMENTSIZE", `config: store.segmentSize: cannot use "": want a whole number of bytes`},
		{"HALFBACK_STORE_SYNCFLUSHTIMEOUT", `config: store.syncFlushTimeout: cannot use ""`},
		{"HALFBACK_STORE_DISKMAXUSEDRATIO", `config: store.diskMaxUsedRatio: cannot use ""`},
		{"HALFBACK_BROKER_AUTOCREATETOPICENABLE", `config: broker.autoCreateTopicEnable: cannot use "": want true or false`},
		{"HALFBACK_TEMPORAL_NAMESPACE", "config: temporal.namespace: must not be empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.name, "")
			_, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) || !errors.Is(err, ErrInvalid) {
				t.Errorf("%s=: err %v, want ErrInvalid containing %q", tt.name, err, tt.wantMsg)
			}
		})
	}
}

// TestEnvNameCase: only the upper-case name of a key is read, so any other
// spelling of it is refused with the one to use, not silently ignored.
func TestEnvNameCase(t *testing.T) {
	for _, tt := range []struct {
		env     map[string]string
		key     string // the variable the error must name
		wantMsg string
	}{
		{map[string]string{"HALFBACK_store_flushtype": "sync"}, "HALFBACK_store_flushtype",
			"the override of store.flushType is HALFBACK_STORE_FLUSHTYPE"},
		{map[string]string{"HALFBACK_Store_FlushType": "sync"}, "HALFBACK_Store_FlushType",
			"the override of store.flushType is HALFBACK_STORE_FLUSHTYPE"},
		{map[string]string{"halfback_mirror_kafka_sasl_password": "x"}, "halfback_mirror_kafka_sasl_password",
			"the override of mirror.kafka.sasl.password is HALFBACK_MIRROR_KAFKA_SASL_PASSWORD"},
		// Refused even next to the upper-case one it would have shadowed.
		{map[string]string{"HALFBACK_STORE_FLUSHTYPE": "async", "HALFBACK_store_flushType": "sync"},
			"HALFBACK_store_flushType", "the override of store.flushType is HALFBACK_STORE_FLUSHTYPE"},
		{map[string]string{"HALFBACK_store_flushtyp": "sync"}, "HALFBACK_store_flushtyp",
			"environment variable names no key of section store"},
	} {
		t.Run(tt.key, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := Load("")
			var ke *KeyError
			if !errors.As(err, &ke) || ke.Key != tt.key || !errors.Is(err, ErrUnknownKey) ||
				!strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err %v; want an ErrUnknownKey naming %s and containing %q", err, tt.key, tt.wantMsg)
			}
		})
	}

	// Not an override in any case: the second word is no section.
	clearEnv(t)
	t.Setenv("HALFBACK_test_log", "1")
	t.Setenv("halfback_delay_crash_round", "2")
	if _, err := Load(""); err != nil {
		t.Errorf("variables naming no section: %v", err)
	}
}

// TestEnvOverridesUnderEmptySection: a section written with nothing under
// it (every key of it deleted or commented out) is the same as no section:
// the environment overrides of its keys still apply.
func TestEnvOverridesUnderEmptySection(t *testing.T) {
	for _, body := range []string{
		"store:\n",
		"store:\n  # dataDir: ./data\nmirror:\n  kafka:\n",
		"mirror:\n",
		"mirror:\n  kafka:\n    tls:\n",
	} {
		clearEnv(t)
		t.Setenv("HALFBACK_STORE_DATADIR", "/var/lib/halfback")
		t.Setenv("HALFBACK_MIRROR_KAFKA_BATCHSIZE", "64")
		t.Setenv("HALFBACK_MIRROR_KAFKA_TLS_ENABLED", "true")
		cfg, err := Load(writeConfig(t, body))
		if err != nil {
			t.Errorf("%q: %v", body, err)
			continue
		}
		if cfg.Store.DataDir != "/var/lib/halfback" || cfg.Mirror.Kafka.BatchSize != 64 || !cfg.Mirror.Kafka.TLS.Enabled {
			t.Errorf("%q: store.dataDir %q, mirror.kafka.batchSize %d, mirror.kafka.tls.enabled %v; "+
				"want the overrides /var/lib/halfback, 64, true", body, cfg.Store.DataDir, cfg.Mirror.Kafka.BatchSize, cfg.Mirror.Kafka.TLS.Enabled)
		}
	}
}
