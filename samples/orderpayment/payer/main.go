package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/internal/app"
	"github.com/halfbackmq/halfback/samples/orderpayment"
	"github.com/halfbackmq/halfback/txnbridge"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main with its arguments and outputs; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("payer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	loadConfig := app.ConfigFlag(fs)
	orderID := fs.String("order", "", "the order to pay (required)")
	amount := fs.Int64("amount", 0, "amount paid in cents; default: the order's amount from the order database")
	paymentID := fs.String("payment-id", "", "the payment's id; default pay-<order>")
	// run prints the usage itself: on stdout when asked for (not a
	// refusal), else on stderr after Parse's error.
	usage := fs.Usage
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			usage()
			return 0
		}
		usage()
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "payer: unexpected argument %q (the config file is given as --config FILE)\n", fs.Arg(0))
		return 2
	}
	if *orderID == "" {
		fmt.Fprintln(stderr, "payer: --order is required")
		return 2
	}
	if *amount < 0 {
		fmt.Fprintf(stderr, "payer: --amount must not be negative (%d cents)\n", *amount)
		return 2
	}
	if *paymentID == "" {
		*paymentID = orderpayment.PaymentID(*orderID)
	}
	if err := pay(ctx, loadConfig, *orderID, *paymentID, *amount, stderr); err != nil {
		fmt.Fprintln(stderr, "payer:", err)
		return 1
	}
	fmt.Fprintf(stdout, "signalled pay %s to order %s\n", *paymentID, *orderID)
	return 0
}

func pay(ctx context.Context, loadConfig func() (*config.Config, error), orderID, paymentID string, amount int64, stderr io.Writer) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	stopTelemetry, err := app.SetupTelemetry(ctx, cfg, config.ServicePayer, app.NewLogger(stderr, cfg.Log.SlogLevel()))
	if err != nil {
		return err
	}
	defer stopTelemetry()
	if amount == 0 {
		db, err := app.OpenWorkerOrders(ctx, cfg)
		if err != nil {
			return err
		}
		o, err := db.Order(ctx, orderID)
		db.Close()
		if err != nil {
			return fmt.Errorf("amount of order %s (or give --amount): %w", orderID, err)
		}
		amount = o.Amount
	}
	// The tracing interceptor records the signal as a SignalWorkflow span
	// and carries its context to the workflow's HandleSignal span.
	ti, err := txnbridge.NewTracingInterceptor()
	if err != nil {
		return err
	}
	tc, err := app.DialTemporal(ctx, cfg, app.NewLogger(stderr, cfg.Log.SlogLevel()), ti)
	if err != nil {
		return err
	}
	defer tc.Close()
	return orderpayment.Pay(ctx, tc, orderID, paymentID, amount)
}
