// Command consumer runs the sample coupon service (package coupon): it
// consumes OrderPaid events from the broker of the config and grants one
// coupon per paid order, in the order database of the config, until
// SIGINT or SIGTERM.
//
//	go run ./samples/coupon/consumer [--config config.yaml] [--group coupon-service]
//
// It finds the broker through the name server the worker's clients use:
// namesrv.listenAddr when worker.embeddedBroker and namesrv.embedded are
// true, else broker.namesrvAddr. It logs "coupon consumer ready" once a
// name server answered, and until then, every 2s, that it is still
// trying.
package main
