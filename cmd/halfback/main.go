package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/config"
)

// configFlag is the root's persistent flag naming the config file.
const (
	configFlag    = "config"
	defaultConfig = "config.yaml"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling so that a
		// second one kills a shutdown that hangs.
		<-ctx.Done()
		stop()
	}()
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "halfback:", err)
		os.Exit(1)
	}
}

// newRootCmd builds the command tree. Tests call it to run commands
// in-process.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "halfback",
		Short: "A RocketMQ-compatible broker in Go that does not lose messages",
		Long: `halfback is a RocketMQ-compatible message broker written in Go that is built
not to lose messages. Its Temporal plugin (package txnbridge, run by
"go run ./worker") drives transactional order/payment messaging through it,
and its Kafka mirror copies topics to Kafka ("halfback mirror", or inside
the worker).

Configuration comes from config.yaml (see --config) and the environment
(HALFBACK_<SECTION>_<KEY>, e.g. HALFBACK_STORE_FLUSHTYPE=async); flags win.`,
		Version:       versionString(),
		SilenceUsage:  true, // a failed run is not a usage mistake
		SilenceErrors: true, // main prints the error once
	}
	root.PersistentFlags().String(configFlag, defaultConfig,
		`config file; if the default is missing, built-in defaults apply; "" means defaults only`)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath())
	})
	root.AddCommand(
		newBrokerCmd(),
		newNamesrvCmd(),
		newBenchCmd(),
		newVersionCmd(),
		newTopicCmd(),
		newSendCmd(),
		newConsumeCmd(),
		newMsgCmd(),
		newGroupCmd(),
		newDLQCmd(),
		newTxnCmd(),
		newTraceCmd(),
		newMirrorCmd(),
		newClusterCmd(),
	)
	failUnknownSubcommands(root)
	return root
}

// failUnknownSubcommands makes each command group (bench, topic, txn, ...)
// runnable: alone it prints its help, and with an argument that names no
// subcommand it fails with "unknown command" instead of printing the help
// and exiting 0, which would let a script go on after a typo.
func failUnknownSubcommands(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		failUnknownSubcommands(c)
	}
	if cmd.HasParent() && cmd.HasSubCommands() && !cmd.Runnable() {
		cmd.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && args[0] == "help" { // `halfback topic help`, as cobra's own
				return nil
			}
			return cobra.NoArgs(cmd, args)
		}
		cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
}

// loadConfig loads the file named by --config, plus the environment. The
// default config.yaml may be missing; a file named explicitly may not.
func loadConfig(cmd *cobra.Command) (*config.Config, error) {
	f := cmd.Flag(configFlag)
	path := f.Value.String()
	if !f.Changed {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			path = ""
		}
	}
	return config.Load(path)
}

// newLogger returns the text logger every command logs through.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
