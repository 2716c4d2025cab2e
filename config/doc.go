// Package config loads config.yaml and the environment into halfback's
// documented options structs.
//
// It is the only package that imports viper. The edges (cmd/halfback, the
// worker, the samples) call [Load]; everything below them receives plain
// structs such as [github.com/halfbackmq/halfback/broker/store.Options].
//
// # Sections
//
// store, broker, namesrv and log configure the broker (`halfback broker`,
// or the one the worker embeds). temporal, payment, orders and worker are
// read by the Temporal worker and the samples: where Temporal is, how
// unpaid orders time out (a delay level and a count of checks), the order
// database ([Config.OrdersDSN]) and whether the worker runs the broker
// in-process. telemetry is read by every process: where spans go and the
// Prometheus metrics endpoint ([Config.TelemetryOptions], which fills in the
// process's own service name, such as [ServiceBroker]).
//
// # Sources
//
// A value comes from, highest priority first:
//
//  1. the environment: HALFBACK_<SECTION>_<KEY> in upper case, for example
//     HALFBACK_STORE_FLUSHTYPE=async or HALFBACK_STORE_SEGMENTSIZE=1048576.
//     A variable set to the empty string is an override to "" and is
//     validated like any value; only an unset one leaves the file's value.
//     A variable HALFBACK_<SECTION>_... that names no key, or names one in
//     other than upper case (HALFBACK_store_flushtype), is an error;
//  2. the YAML file given to [Load];
//  3. the built-in defaults, which are the values config.yaml ships with
//     (except dataDir, which is relative to the working directory either way).
//
// Keys are case-insensitive, as in viper. A key or section the file does not
// know is an error, never silently ignored: a typo in a durability setting
// must not fall back to a default. A zero number means "the store's built-in
// default" (see broker/store); a negative one is an error.
//
// # Errors
//
// Every problem with a single key is a [*KeyError] that names the key's full
// path, for example
//
//	config: store.segmentSize: must not be negative (got -5)
//
// and wraps [ErrInvalid] or [ErrUnknownKey]; test with errors.Is.
//
// # Usage
//
//	cfg, err := config.Load("config.yaml")
//	if err != nil {
//		return err
//	}
//	opts, err := cfg.StoreOptions()
//	if err != nil {
//		return err
//	}
//	st, err := store.Open(opts)
package config
