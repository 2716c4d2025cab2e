package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

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
	fs := flag.NewFlagSet("starter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	loadConfig := app.ConfigFlag(fs)
	var o orderpayment.Options
	var asJSON bool
	fs.IntVar(&o.Orders, "orders", 5, "how many orders to start")
	fs.Float64Var(&o.PayRatio, "pay-ratio", 0.5, "fraction of the orders to pay, 0 to 1; the others time out")
	fs.BoolVar(&o.Wait, "wait", false, "wait for every order to end and print a summary")
	fs.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	fs.StringVar(&o.Prefix, "prefix", fmt.Sprintf("order-%d", time.Now().UnixMilli()), "order id prefix: <prefix>-1, <prefix>-2, ...")
	fs.StringVar(&o.SKU, "sku", orderpayment.DefaultSKU, "what every order buys")
	fs.Int64Var(&o.Amount, "amount", orderpayment.DefaultAmount, "every order's price, in cents")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "starter: unexpected argument %q (the config file is given as --config FILE)\n", fs.Arg(0))
		return 2
	}
	sum, err := start(ctx, loadConfig, o, stderr)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(sum)
	} else {
		printSummary(stdout, sum, o.Wait)
	}
	if err != nil {
		fmt.Fprintln(stderr, "starter:", err)
		return 1
	}
	if sum.Failed > 0 {
		return 1
	}
	return 0
}

// start connects to Temporal and the order database and runs o.
func start(ctx context.Context, loadConfig func() (*config.Config, error), o orderpayment.Options, stderr io.Writer) (orderpayment.Summary, error) {
	cfg, err := loadConfig()
	if err != nil {
		return orderpayment.Summary{}, err
	}
	o.TaskQueue = cfg.Temporal.TaskQueue
	if err := o.Validate(); err != nil {
		return orderpayment.Summary{}, err
	}
	log := app.NewLogger(stderr, cfg.Log.SlogLevel())
	stopTelemetry, err := app.SetupTelemetry(ctx, cfg, config.ServiceStarter, log)
	if err != nil {
		return orderpayment.Summary{}, err
	}
	defer stopTelemetry()
	ti, err := txnbridge.NewTracingInterceptor()
	if err != nil {
		return orderpayment.Summary{}, err
	}
	tc, err := app.DialTemporal(ctx, cfg, log, ti)
	if err != nil {
		return orderpayment.Summary{}, err
	}
	defer tc.Close()
	db, err := app.OpenOrders(ctx, cfg)
	if err != nil {
		return orderpayment.Summary{}, err
	}
	defer db.Close()
	return orderpayment.Run(ctx, tc, db, o)
}

// printSummary prints each order and the counts.
func printSummary(w io.Writer, s orderpayment.Summary, waited bool) {
	for _, o := range s.Orders {
		paid := "unpaid"
		if o.PaySent {
			paid = "paid  "
		}
		line := fmt.Sprintf("%-28s %s", o.OrderID, paid)
		if waited {
			line += fmt.Sprintf(" -> %-9s (%d payment checks)", o.Status, o.Checks)
		}
		if o.TraceID != "" {
			line += " trace " + o.TraceID
		}
		if o.Error != "" {
			line += "  FAILED: " + o.Error
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "started %d, pay sent %d", s.Started, s.PaySent)
	if waited {
		fmt.Fprintf(w, "; paid %d, cancelled %d, failed %d", s.Paid, s.Cancelled, s.Failed)
	}
	fmt.Fprintln(w)
}
