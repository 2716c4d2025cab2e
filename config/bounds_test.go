package config

import (
	"errors"
	"testing"
)

// wantKeyError fails unless err is a *KeyError naming key and wrapping
// sentinel.
func wantKeyError(t *testing.T, what string, err error, key string, sentinel error) {
	t.Helper()
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Key != key || !errors.Is(err, sentinel) {
		t.Errorf("%s: Load = %v; want %v naming %s", what, err, sentinel, key)
	}
}

// Counts of milliseconds or hours too large for a time.Duration are
// refused, naming the key: they wrapped around (585 years of
// fileReservedHours became 25 minutes, and retention deleted segments an
// hour old).
func TestDurationsThatWouldWrapAreRefused(t *testing.T) {
	for key, body := range map[string]string{
		"store.fileReservedHours":    "store:\n  fileReservedHours: 5124096\n",
		"store.checkpointIntervalMs": "store:\n  checkpointIntervalMs: 18446744073710\n",
		"store.flushIntervalMs":      "store:\n  flushIntervalMs: 18446744073710\n",
	} {
		clearEnv(t)
		_, err := Load(writeConfig(t, body))
		wantKeyError(t, body, err, key, ErrInvalid)
	}
	clearEnv(t)
	if _, err := Load(writeConfig(t, "store:\n  fileReservedHours: 2562047\n")); err != nil {
		t.Errorf("the largest fileReservedHours a duration holds: %v", err)
	}
}

// A variable named after a section (HALFBACK_MIRROR) names no key: viper
// read it as shadowing the whole section, whose every key then read as
// unset (a mirror the file enabled was off, the worker's embedded broker
// too). It is refused, naming the variable.
func TestEnvNamingASectionIsRefused(t *testing.T) {
	for _, tt := range []struct{ env, file string }{
		{"HALFBACK_MIRROR", "mirror:\n  kafka:\n    enabled: true\n    brokers: k:9092\n    topics: orders\n"},
		{"HALFBACK_WORKER", "worker:\n  embeddedBroker: true\n"},
	} {
		clearEnv(t)
		t.Setenv(tt.env, "1")
		_, err := Load(writeConfig(t, tt.file))
		wantKeyError(t, tt.env+"=1", err, tt.env, ErrUnknownKey)
	}
}

// A key written with no value ("dataDir:", YAML null, as a template whose
// variable was empty leaves it) is an error naming the key, as dataDir: ""
// and HALFBACK_STORE_DATADIR= are; it took the default.
func TestKeyWithoutValueIsAnError(t *testing.T) {
	for key, body := range map[string]string{
		"store.dataDir":              "store:\n  dataDir:\n",
		"store.flushType":            "store:\n  flushType: ~\n",
		"broker.transactionCheckMax": "broker:\n  transactionCheckMax: null\n",
	} {
		clearEnv(t)
		_, err := Load(writeConfig(t, body))
		wantKeyError(t, body, err, key, ErrInvalid)
	}
	clearEnv(t)
	if _, err := Load(writeConfig(t, "store:\nbroker:\n")); err != nil {
		t.Errorf("empty sections: %v", err)
	}
}

// A listen address is used as written: one with white space (" 127.0.0.1:0")
// is refused naming its key, rather than passing and failing to listen
// with an error that names none.
func TestListenAddrWithWhiteSpaceIsRefused(t *testing.T) {
	for env, key := range map[string]string{
		"HALFBACK_BROKER_LISTENADDR":  "broker.listenAddr",
		"HALFBACK_NAMESRV_LISTENADDR": "namesrv.listenAddr",
	} {
		clearEnv(t)
		t.Setenv(env, " 127.0.0.1:0")
		_, err := Load("")
		wantKeyError(t, env+`=" 127.0.0.1:0"`, err, key, ErrInvalid)
	}
}

// A zero means the default only where config.yaml says so (the store
// section, telemetry.sampleRatio, mirror.kafka.batchSize):
// broker.timerMaxDelay: 0s is refused, not read as 72h.
func TestTimerMaxDelayZeroIsRefused(t *testing.T) {
	clearEnv(t)
	_, err := Load(writeConfig(t, "broker:\n  timerMaxDelay: 0s\n"))
	wantKeyError(t, "timerMaxDelay: 0s", err, "broker.timerMaxDelay", ErrInvalid)
}

// A queueEntriesPerFile whose files' size (20 bytes an entry) does not fit
// is refused, naming the key: 4611686018427387904 wrapped the size to 0
// and the broker acknowledged sends it never dispatched, spinning a core,
// and could not shut down.
func TestQueueEntriesPerFileTooLargeIsRefused(t *testing.T) {
	for _, n := range []string{"4611686018427387904", "107374183"} {
		clearEnv(t)
		t.Setenv("HALFBACK_STORE_QUEUEENTRIESPERFILE", n)
		_, err := Load("")
		wantKeyError(t, "queueEntriesPerFile "+n, err, "store.queueEntriesPerFile", ErrInvalid)
	}
}
