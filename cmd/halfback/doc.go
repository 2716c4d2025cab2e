// Halfback is the one command-line tool of the halfback project.
//
// Usage:
//
//	halfback broker [--config FILE] [--data-dir DIR] [--flush sync|async]
//	halfback namesrv                  the name server alone
//	halfback mirror [status]          the Kafka mirror alone; its lag
//	halfback send | consume           one message in, a group's messages out
//	halfback topic | group | dlq      topics, consumer groups, dead letters
//	halfback msg | trace              find a message; its lifecycle
//	halfback txn                      open and parked transactions
//	halfback cluster                  clusters' brokers; drain one (wipe-write-perm)
//	halfback bench store|produce|e2e|...
//	halfback version
//
// "halfback <command> --help" documents each one.
//
// Every command reads config.yaml (or the file given by --config) and the
// environment overrides HALFBACK_<SECTION>_<KEY> through package config;
// flags override both. If the default config.yaml is missing the built-in
// defaults apply; a file named with --config must exist, and --config ""
// means defaults and environment only.
//
// # Adding a command
//
// Each subcommand lives in its own file with a constructor, newXxxCmd,
// that newRootCmd (or a parent such as newBenchCmd) adds. A command's work
// happens in a function that takes a context, so tests run it in-process
// and stop it by cancelling instead of sending signals.
package main
