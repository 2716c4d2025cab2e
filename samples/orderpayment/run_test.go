package orderpayment

import (
	"context"
	"errors"
	"testing"

	"go.temporal.io/api/serviceerror"

	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
)

// An order id names one order: starting it again, while its workflow
// runs, fails instead of attaching to it (two starters with one prefix
// would otherwise pay each other's orders without a word).
func TestStartingAnOrderTwiceFails(t *testing.T) {
	srv := txnbridgetest.StartDevServer(t)
	tc := txnbridgetest.DialTemporal(t, srv)
	o := Options{Orders: 1, TaskQueue: "twice-test", Prefix: "twice"}.withDefaults()
	ctx := context.Background()
	var out Outcome
	if _, err := startOrder(ctx, tc, o, o.input(0), false, &out); err != nil {
		t.Fatal(err)
	}
	_, err := startOrder(ctx, tc, o, o.input(0), false, &out)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if !errors.As(err, &started) {
		t.Fatalf("second start of %s: %v, want WorkflowExecutionAlreadyStarted", o.input(0).OrderID, err)
	}
}
