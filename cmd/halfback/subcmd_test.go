package main

import (
	"strings"
	"testing"
)

// A mistyped subcommand of a command group (`halfback bench stor`,
// `halfback topic creat orders`) fails with "unknown command"; it printed
// the group's help and exited 0, so a script went on as if the command had
// run. The group alone still prints its help.
func TestUnknownSubcommandFails(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{
		{"bench", "stor"},
		{"topic", "creat", "orders"},
		{"txn", "lst"},
		{"msg", "qery"},
		{"group", "offset", "g"},
		{"dlq", "lst", "g"},
	} {
		out, err := run(t, append([]string{"--config", ""}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "unknown command") {
			first, _, _ := strings.Cut(out, "\n")
			t.Errorf("halfback %s: err = %v (exit 0), output starts %q; want an unknown-command error",
				strings.Join(args, " "), err, first)
		}
	}
	for _, args := range [][]string{{"bench"}, {"topic", "help"}, {"topic", "--help"}, {"help", "topic"}} {
		if out, err := run(t, append([]string{"--config", ""}, args...)...); err != nil || !strings.Contains(out, "Usage:") {
			t.Errorf("halfback %s: %v, want its help", strings.Join(args, " "), err)
		}
	}
}
