// Command starter starts OrderPaymentWorkflow runs and pays some of them.
//
//	go run ./samples/orderpayment/starter --orders 10 --pay-ratio 0.5 --wait [--json] [--config config.yaml]
//
// It seeds stock in the order database (orders section of the config) so
// that every order can be created, starts --orders workflows on
// temporal.taskQueue, signals "pay" to the fraction --pay-ratio of them
// (the rest time out after payment.maxChecks delayed checks) and, with
// --wait, waits for all and prints each order's end and a summary (--json:
// one JSON object with started, paySent, paid, cancelled, failed and the
// orders). Each order's workflow is started in a root span "order <id>",
// its trace id printed with the order (traceId in JSON) when a tracer
// provider records.
//
// While it waits it prints to stderr, every 10s, the order it waits for,
// how many it still has to wait for and whether any worker polls the task
// queue (with none, no order ever ends). --wait-timeout bounds the wait,
// counted once every order has started (orderpayment.Options.WaitTimeout): past
// it the starter prints the summary so far and exits 1; the default, 0,
// waits until every order ends or SIGINT/SIGTERM.
//
// The exit status is 2 for a refused command line (one line on stderr
// naming the flag), 1 if the starter could not run (a bad config,
// Temporal unreachable: the error alone, no summary), gave up waiting, or
// an order failed: its workflow failed, or it did not end PAID when paid
// and CANCELLED when not.
package main
