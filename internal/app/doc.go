// Package app holds what the Temporal worker (worker/) and the sample
// commands (samples/...) share at the edge: finding and loading the config
// file, the logger, and turning the config into connections — the Temporal
// client, the halfback client and the order database. Nothing below the
// edge imports it.
package app
