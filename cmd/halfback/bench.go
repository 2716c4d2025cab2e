package main

import "github.com/spf13/cobra"

// newBenchCmd returns `halfback bench`, the parent of the benchmarks. It
// has no work of its own and prints its help.
//
// Each benchmark lives in its own file (bench_store.go: `bench store`) with
// a constructor that is added below in one line. A benchmark reads the
// config with loadConfig(cmd), logs through newLogger, and does its work in
// a function that takes cmd.Context() so a test can cancel it.
func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Run benchmarks against the embedded broker",
		Args:  cobra.NoArgs,
	}
	// Benchmarks, one line each:
	cmd.AddCommand(newBenchStoreCmd())
	cmd.AddCommand(newBenchDelayCmd())
	cmd.AddCommand(newBenchProduceCmd())
	cmd.AddCommand(newBenchE2ECmd())
	cmd.AddCommand(newBenchTxnCmd())
	return cmd
}
