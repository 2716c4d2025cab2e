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
	"time"

	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/internal/app"
	"github.com/halfbackmq/halfback/samples/coupon"
	"github.com/halfbackmq/halfback/workflows"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "coupon consumer:", err)
		os.Exit(1)
	}
}

// run is main with its arguments and log output.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	loadConfig := app.ConfigFlag(fs)
	group := fs.String("group", coupon.DefaultGroup, "consumer group")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) { // asked for, and Parse printed it: no failure
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q (the config file is given as --config FILE)", app.ErrUsage, fs.Arg(0))
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	log := app.NewLogger(stderr, cfg.Log.SlogLevel())
	stopTelemetry, err := app.SetupTelemetry(ctx, cfg, config.ServiceCoupon, log)
	if err != nil {
		return err
	}
	defer stopTelemetry()
	db, err := app.OpenOrders(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	c, err := app.NewClient(app.NamesrvAddrs(cfg), log)
	if err != nil {
		return err
	}
	defer c.Close()
	pc, err := coupon.Start(ctx, c, db, coupon.Options{Group: *group, Logger: log})
	if err != nil {
		return err
	}
	// The consumer starts whether or not a name server answers (it keeps
	// asking); "ready", which scripts wait for, means one did.
	if err := app.AwaitNamesrv(ctx, c, app.NamesrvAddrs(cfg), workflows.TopicOrderEvents, retryEvery, "coupon consumer", log); err != nil {
		pc.Close()
		return nil
	}
	log.Info("coupon consumer ready", "group", *group, "namesrv", app.NamesrvAddrs(cfg))
	<-ctx.Done()
	return pc.Close()
}

// retryEvery is how often app.AwaitNamesrv asks the name servers again.
var retryEvery = 2 * time.Second
