// Package txnbridgetest starts what tests of the Temporal plugin need, in
// process and on loopback ports: a name server and a broker with short
// delay levels and check-back times, a halfback client, an order database
// in a temporary directory, and a Temporal dev server from the pinned CLI.
// Everything is closed when the test ends.
//
// # Usage
//
//	st := txnbridgetest.StartBroker(t, txnbridgetest.BrokerOptions{})
//	c := txnbridgetest.NewClient(t, st.NamesrvAddr)
//	db := txnbridgetest.OpenDB(t)
//	srv := txnbridgetest.StartDevServer(t) // skips the test without the CLI
//	tc := txnbridgetest.DialTemporal(t, srv)
//	// ... run a worker with the txnbridge plugin, start orders ...
//	msgs := st.Stored(t, workflows.TopicOrderEvents) // what consumers can see
package txnbridgetest
