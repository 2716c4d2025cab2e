package config

import (
	"errors"
	"fmt"
	"testing"

	"github.com/halfbackmq/halfback/broker/store"
)

// TestStoreErrorNamesKeys: broker/store's own checks, which span two keys,
// are reported with config keys, not store.Options field names.
func TestStoreErrorNamesKeys(t *testing.T) {
	clearEnv(t)
	t.Setenv("HALFBACK_STORE_SEGMENTSIZE", "100")
	_, err := Load("")
	const want = "config: store.segmentSize: 100 cannot hold a message of store.maxMessageSize 4194304"
	var ke *KeyError
	if err == nil || err.Error() != want || !errors.As(err, &ke) || ke.Key != "store.segmentSize" {
		t.Fatalf("err %v; want %q", err, want)
	}
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, store.ErrInvalidOptions) {
		t.Errorf("err %v is not ErrInvalid and store.ErrInvalidOptions", err)
	}

	// A field no key sets is reported against the section, as the store
	// words it.
	cause := fmt.Errorf("%w: RetentionCheckPeriod -1s is negative", store.ErrInvalidOptions)
	if got := storeKeyError(cause).Error(); got != "config: store: RetentionCheckPeriod -1s is negative" {
		t.Errorf("unmapped field: %q", got)
	}
}

// TestFieldKeysAreKeys keeps the field-to-key maps pointing at real keys
// (or, for the mirror's "Kafka", its section).
func TestFieldKeysAreKeys(t *testing.T) {
	known := map[string]bool{"mirror.kafka": true}
	for _, k := range keys {
		known[k.path] = true
	}
	for name, fk := range map[string]fieldKeys{"store": storeFieldKeys, "mirror": mirrorFieldKeys} {
		for field, key := range fk {
			if !known[key] {
				t.Errorf("%s field %s maps to %s, which is no key", name, field, key)
			}
		}
	}
}
