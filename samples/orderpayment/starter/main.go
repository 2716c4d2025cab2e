package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	enums "go.temporal.io/api/enums/v1"
	temporalclient "go.temporal.io/sdk/client"

	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/internal/app"
	"github.com/halfbackmq/halfback/samples/orderpayment"
	"github.com/halfbackmq/halfback/txnbridge"
	"github.com/halfbackmq/halfback/workflows"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// progressEvery is how often --wait says which order it still waits for.
var progressEvery = 10 * time.Second

// run is main with its arguments and outputs; it returns the exit status:
// 2 for a refused command line (one line on stderr naming the flag, no
// summary), 1 if the starter could not run or an order failed.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("starter", flag.ContinueOnError)
	// Parse's own report is the error and then the whole flag list, which
	// buries the error; run prints the error alone.
	fs.SetOutput(io.Discard)
	loadConfig := app.ConfigFlag(fs)
	var o orderpayment.Options
	var asJSON bool
	var waitTimeout time.Duration
	fs.IntVar(&o.Orders, "orders", 5, "how many orders to start")
	fs.Float64Var(&o.PayRatio, "pay-ratio", 0.5, "fraction of the orders to pay, 0 to 1; the others time out")
	fs.BoolVar(&o.Wait, "wait", false, "wait for every order to end and print a summary")
	fs.DurationVar(&waitTimeout, "wait-timeout", 0, "with --wait, give up waiting after this long (exit 1); 0 waits until every order ends or Ctrl-C")
	fs.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	fs.StringVar(&o.Prefix, "prefix", fmt.Sprintf("order-%d", time.Now().UnixMilli()), "order id prefix: <prefix>-1, <prefix>-2, ...")
	fs.StringVar(&o.SKU, "sku", orderpayment.DefaultSKU, "what every order buys")
	fs.Int64Var(&o.Amount, "amount", orderpayment.DefaultAmount, "every order's price, in cents")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) { // asked for: not a refusal
			fs.SetOutput(stdout)
			fmt.Fprintln(stdout, "Usage of starter:")
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "starter: %v (starter --help lists the flags)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "starter: unexpected argument %q (the config file is given as --config FILE)\n", fs.Arg(0))
		return 2
	}
	if err := checkFlags(o, waitTimeout); err != nil {
		fmt.Fprintln(stderr, "starter:", err)
		return 2
	}
	sum, err := start(ctx, loadConfig, o, waitTimeout, stderr)
	if err != nil && sum.Started == 0 {
		// Nothing started (a bad config, Temporal unreachable): a summary
		// of zeros would only hide the error.
		fmt.Fprintln(stderr, "starter:", err)
		return 1
	}
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

// checkFlags refuses the flag values o.Validate would, by their flag names.
func checkFlags(o orderpayment.Options, waitTimeout time.Duration) error {
	switch {
	case o.Orders < 1:
		return fmt.Errorf("--orders %d: want at least 1", o.Orders)
	case !(o.PayRatio >= 0 && o.PayRatio <= 1):
		return fmt.Errorf("--pay-ratio %v: want 0 to 1", o.PayRatio)
	case o.Prefix == "":
		return errors.New("--prefix is empty")
	case !workflows.ValidOrderID(fmt.Sprintf("%s-%d", o.Prefix, o.Orders)):
		return fmt.Errorf("--prefix %q: order ids such as %q would be longer than %d characters or have white space",
			o.Prefix, fmt.Sprintf("%s-%d", o.Prefix, o.Orders), workflows.MaxOrderIDLength)
	case o.Amount <= 0:
		return fmt.Errorf("--amount %d: must be a positive number of cents", o.Amount)
	case waitTimeout < 0:
		return fmt.Errorf("--wait-timeout %v: must not be negative", waitTimeout)
	case waitTimeout > 0 && !o.Wait:
		return fmt.Errorf("--wait-timeout %v: bounds --wait, which is not given", waitTimeout)
	}
	return nil
}

// start connects to Temporal and the order database and runs o, waiting
// at most waitTimeout for the runs to end (0: no bound).
func start(ctx context.Context, loadConfig func() (*config.Config, error), o orderpayment.Options,
	waitTimeout time.Duration, stderr io.Writer) (orderpayment.Summary, error) {
	cfg, err := loadConfig()
	if err != nil {
		return orderpayment.Summary{}, err
	}
	o.TaskQueue = cfg.Temporal.TaskQueue
	if err := o.Validate(); err != nil {
		return orderpayment.Summary{}, err
	}
	db, err := app.OpenWorkerOrders(ctx, cfg)
	if err != nil {
		return orderpayment.Summary{}, err
	}
	defer db.Close()
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
	if o.Wait {
		o.ProgressEvery = progressEvery
		o.Progress = func(orderID string, open, total int) {
			fmt.Fprintf(stderr, "starter: waiting for order %s (%d of %d orders left to wait for)%s\n",
				orderID, open, total, pollers(ctx, tc, o.TaskQueue))
		}
		o.WaitTimeout = waitTimeout
	}
	sum, err := orderpayment.Run(ctx, tc, db, o)
	if errors.Is(err, orderpayment.ErrGaveUpWaiting) {
		err = fmt.Errorf("gave up waiting after --wait-timeout %v, with %d of %d orders left to wait for",
			waitTimeout, sum.Started-sum.Paid-sum.Cancelled-sum.Failed, sum.Started)
	}
	return sum, err
}

// pollers says, for a progress line, whether any worker polls queue: a
// run waits silently for ever on a task queue nobody serves.
func pollers(ctx context.Context, tc temporalclient.Client, queue string) string {
	resp, err := tc.DescribeTaskQueue(ctx, queue, enums.TASK_QUEUE_TYPE_WORKFLOW)
	switch {
	case err != nil:
		return ""
	case len(resp.GetPollers()) == 0:
		return fmt.Sprintf(" (no worker has polled task queue %s lately: is the worker running?)", queue)
	}
	return fmt.Sprintf(" (%d workers poll task queue %s)", len(resp.GetPollers()), queue)
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
			status := o.Status
			if status == "" { // given up waiting for it
				status = "RUNNING"
			}
			line += fmt.Sprintf(" -> %-9s (%d payment checks)", status, o.Checks)
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
