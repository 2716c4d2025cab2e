package txnbridge_test

import (
	"context"
	"log"

	temporalclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/txnbridge"
	"github.com/halfbackmq/halfback/workflows"
)

// A worker that runs the order/payment workflow: the plugin brings the
// workflow, the activities, the producer with the check-back resolver and
// the delayed-check consumer, and closes them when the worker stops.
func ExampleNewPlugin() {
	ctx := context.Background()
	hb, err := client.New(client.Options{NamesrvAddrs: []string{"127.0.0.1:9876"}})
	if err != nil {
		log.Fatal(err)
	}
	defer hb.Close()
	db, err := orders.Open(ctx, orders.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	tc, err := temporalclient.Dial(temporalclient.Options{HostPort: "localhost:7233"})
	if err != nil {
		log.Fatal(err)
	}
	defer tc.Close()

	plugin, err := txnbridge.NewPlugin(txnbridge.Options{Client: hb, DB: db, Temporal: tc,
		PaymentCheckLevel: 5, MaxPaymentChecks: 10})
	if err != nil {
		log.Fatal(err)
	}
	w := worker.New(tc, workflows.TaskQueue, worker.Options{Plugins: []worker.Plugin{plugin}})
	if err := w.Run(worker.InterruptCh()); err != nil {
		log.Fatal(err)
	}
}
