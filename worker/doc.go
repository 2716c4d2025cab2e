// Command worker is halfback's Temporal worker for the order/payment flow.
//
//	go run ./worker [--config config.yaml]
//
// It reads the config (config.yaml and HALFBACK_* overrides), runs the
// broker and its name server in-process when worker.embeddedBroker is
// true (else it uses the name servers of broker.namesrvAddr), opens the
// order database (orders section), dials Temporal (temporal section), and
// runs a worker on temporal.taskQueue with the txnbridge plugin: the
// OrderPaymentWorkflow, its activities, the check-back resolver and the
// consumer that turns delayed payment checks into signals. It logs
// "worker ready" then; with an external broker, only once one of its name
// servers answers, saying until then, every 2 s, which ones it is still
// trying (the worker runs meanwhile, and orders flow as soon as the broker
// is there). SIGINT or SIGTERM stops it cleanly, waiting or not: the
// worker first (running activities get 10 s), then the clients, the
// database and the broker. If Temporal stops the worker instead (a poll
// error the SDK does not retry, such as the namespace deleted), it stops
// the rest the same way and exits 1.
package main
