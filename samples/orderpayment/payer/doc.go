// Command payer pays one order: it signals "pay" to the order's
// OrderPaymentWorkflow (workflow id = order id), as a payment provider's
// callback would.
//
//	go run ./samples/orderpayment/payer --order order-1700000000-3 [--amount 1999] [--payment-id pay-1] [--config config.yaml]
//
// Without --amount it pays the order's amount, read from the order
// database (orders section of the config). Without --payment-id the
// payment id is pay-<order id>, the one the starter uses. With the
// telemetry section exporting spans, the signal is a SignalWorkflow span
// whose context the workflow's HandleSignal span continues.
package main
