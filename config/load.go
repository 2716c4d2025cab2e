package config

import (
	"fmt"
	"os"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"
)

// Load reads the YAML file at path (or nothing, if path is ""), applies the
// environment overrides HALFBACK_<SECTION>_<KEY> and the defaults, decodes
// the result and validates it with [Config.Validate].
//
// An override set to the empty string applies: HALFBACK_ORDERS_DSN= sets
// orders.dsn to "", and HALFBACK_STORE_DATADIR= fails as an empty
// store.dataDir. Only an unset variable leaves the file's value.
//
// A missing file is an error that wraps fs.ErrNotExist; an unknown section
// or key, or an environment variable HALFBACK_<SECTION>_... that is not
// read (naming no key, or a key but not in upper case), is a [*KeyError]
// wrapping [ErrUnknownKey]; a bad value is a [*KeyError] wrapping
// [ErrInvalid].
func Load(path string) (*Config, error) {
	v := viper.New()
	for _, k := range keys {
		v.SetDefault(k.path, k.def)
	}
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	// A variable set to "" is an override to the empty value (validated
	// like any other), not an unset one.
	v.AllowEmptyEnv(true)
	v.AutomaticEnv()
	if err := checkEnv(os.Environ()); err != nil {
		return nil, err
	}

	if path != "" {
		if err := readFile(v, path); err != nil {
			return nil, err
		}
	}

	var cfg Config
	if err := v.UnmarshalExact(&cfg, decodeOptions); err != nil {
		return nil, explainDecode(v, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// readFile checks the file's sections and keys, then hands it to viper.
func readFile(v *viper.Viper, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrSyntax, path, err)
	}
	if err := checkKeys(raw, path); err != nil {
		return err
	}
	// A section with nothing under it ("store:" with its keys commented
	// out) is dropped: handed to viper as a nil value, it shadows the
	// environment overrides of every key below it.
	dropEmptySections(raw)
	if err := v.MergeConfigMap(raw); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrSyntax, path, err)
	}
	return nil
}

// dropEmptySections deletes the nil values of body and of the mappings
// below it. After checkKeys, only a section can be nil (a key with no
// value is an error).
func dropEmptySections(body map[string]any) {
	for name, val := range body {
		switch sub := val.(type) {
		case nil:
			delete(body, name)
		case map[string]any:
			dropEmptySections(sub)
		}
	}
}

// decodeOptions makes viper decode strictly, through decodeHook only.
func decodeOptions(dc *mapstructure.DecoderConfig) {
	dc.DecodeHook = decodeHook
	dc.WeaklyTypedInput = false
}

// explainDecode finds the key whose value failed to decode and names it.
// mapstructure's own error names the field but not in a form to test for.
func explainDecode(v *viper.Viper, err error) error {
	for _, k := range keys {
		if kerr := v.UnmarshalKey(k.path, k.field(new(Config)), decodeOptions); kerr != nil {
			return &KeyError{Key: k.path, Err: ErrInvalid, Cause: kerr,
				Detail: fmt.Sprintf("cannot use %s: want %s", describe(v.Get(k.path)), k.want)}
		}
	}
	return fmt.Errorf("config: %w: %w", ErrInvalid, err)
}
