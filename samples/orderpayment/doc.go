// Package orderpayment starts and pays OrderPaymentWorkflow runs: the
// library behind the starter and payer commands (starter/, payer/) and the
// worker's end-to-end tests.
//
// # Usage
//
//	sum, err := orderpayment.Run(ctx, temporalClient, ordersDB, orderpayment.Options{
//		Orders: 10, PayRatio: 0.5, Wait: true, TaskQueue: "order-payment"})
//	// sum.Paid, sum.Cancelled, sum.Failed; sum.Orders has each order's outcome.
//
//	err = orderpayment.Pay(ctx, temporalClient, "order-42", "pay-42", 1999)
package orderpayment
