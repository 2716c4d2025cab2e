// Package coupon is a sample downstream service: a push consumer of the
// OrderPaid events on topic "order-events" that grants the customer a
// coupon per paid order, exactly once in effect.
//
// Delivery is at least once: a message can come again (a redelivery after
// a crash, a retry, a second consumer of the group). [Handler] makes the
// effect idempotent with [orders.DB.Consume]: the (group, message id) row
// of the dedup table is written in the same local transaction as the
// coupon, and the message is acknowledged only after that transaction
// committed. A redelivered message finds its row and grants nothing; a
// failed transaction leaves no row, and the message comes again through
// the group's retry topic.
//
// # Usage
//
//	pc, err := coupon.Start(ctx, halfbackClient, db, coupon.Options{})
//	defer pc.Close()
package coupon
