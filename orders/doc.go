// Package orders is the local order database of the order/payment flow:
// orders, inventory, payments, the transaction log that fences local
// transactions against the broker's check-back, consumer deduplication
// and the coupons of the sample consumer. It uses database/sql, with
// SQLite (modernc.org/sqlite, pure Go) as the embedded default.
//
// # Local transactions and the fence
//
// Every business change ([DB.CreateOrder], [DB.MarkPaid], [DB.Cancel]) is
// a local transaction with an id (the UNIQ_KEY of its half message). It
// runs in one SQL transaction whose first statement inserts the id into
// the transaction log (table txn_log) as COMMITTED, insert-if-absent; the
// change and the log row commit together or not at all. When the broker
// checks back a half message nobody ended, the resolver calls [DB.Fence],
// which inserts the id as FENCED, insert-if-absent, and reads the row
// back. Rows are never changed or deleted, and the id is the primary key,
// so exactly one of the two inserts wins:
//
//   - the local transaction first: Fence returns [TxnCommitted] (commit
//     the half message); a second run of the same local transaction
//     changes nothing and returns [ErrAlreadyCommitted] (treat it as
//     success);
//   - the fence first: Fence returns [TxnFenced] (roll the half message
//     back); the local transaction, if it ever runs, rolls back and
//     returns [ErrFenced].
//
// Hence a committed message always has a committed local transaction, and
// a fenced one never gets one. A business error ([ErrOutOfStock],
// [ErrBadState], [ErrBadAmount], [ErrNotFound], [ErrOrderExists],
// [ErrPaymentExists]) rolls the log row back too: nothing of the transaction is written, and a
// later fence decides it as FENCED.
//
// # Consumers
//
// [DB.Consume] makes a consumer's effect idempotent: the (group, message
// id) row of table consumer_dedup is inserted in the same SQL transaction
// as the effect, so a redelivered message is skipped, and an effect that
// failed leaves no row and runs again. [GrantCoupon] is the sample
// consumer's effect; [DB.Coupons] counts its results.
//
// # SQLite and concurrency
//
// SQLite has one writer at a time. By default the pool of a SQLite
// database has one connection ([Options].MaxOpenConns 0 means 1 for
// SQLite): in-process writers queue in database/sql, in order and without
// SQLITE_BUSY errors or the busy handler's back-off sleeps, which is also
// what keeps `go test -race` stable under load. Reads queue behind a write
// too; an order database's transactions are a few statements long, so
// that costs little. With one connection, a [DB.Consume] fn must use only
// its *sql.Tx: a call to the DB inside it would wait for itself. Other
// processes may open the same file: [DefaultDSN] selects WAL mode (readers
// do not block the writer), waits up to 5 s for another process's write
// lock (busy_timeout) and begins transactions IMMEDIATE (the write lock is
// taken at BEGIN, so a transaction never fails to upgrade a read lock).
// Open also retries, for up to 30 s, the SQLITE_BUSY that busy_timeout
// does not cover: two processes opening the same new file at once, one
// switching it to WAL while the other holds its lock.
// Open writes the schema's version into the SQLite file's user_version,
// so that it refuses a file a newer version wrote ([ErrSchemaVersion]) and
// one it cannot write (SQLite opens a file the process may not write
// read-only, and every local transaction would fail).
// SQLite's default synchronous=FULL keeps a committed transaction across
// a power loss. A larger MaxOpenConns works (the transaction log's
// primary key still decides every race) but trades queueing for busy
// retries.
//
// # Other databases
//
// The SQL is portable: numbered placeholders ($1), CREATE TABLE/INDEX IF
// NOT EXISTS, INSERT ... ON CONFLICT DO NOTHING / DO UPDATE, and no
// SQLite-only types (times are BIGINT Unix milliseconds). PostgreSQL is
// meant to work with its driver imported in main and set as
// [Options].Driver, and a DSN: there its default READ COMMITTED isolation
// suffices, a racing insert of the same id waiting for the first
// transaction's end and then conflicting. Only SQLite is tested; tables an
// older version created on PostgreSQL have 32-bit INTEGER quantities
// (ALTER TABLE ... ALTER COLUMN qty TYPE BIGINT, on orders and inventory).
//
// # Usage
//
//	db, err := orders.Open(ctx, orders.Options{}) // orders.db in the working directory
//	defer db.Close()
//	err = db.SetStock(ctx, "sku-1", 10)
//
//	// The local transaction of half message "wf-42/create":
//	err = db.CreateOrder(ctx, "wf-42/create", orders.Order{ID: "42", User: "ann", Amount: 1999, SKU: "sku-1", Qty: 1})
//	if errors.Is(err, orders.ErrAlreadyCommitted) {
//		err = nil // the activity ran twice
//	}
//
//	// The broker's check-back for "wf-42/create":
//	state, err := db.Fence(ctx, "wf-42/create") // TxnCommitted: commit; TxnFenced: roll back
//
//	// An idempotent consumer:
//	first, err := db.Consume(ctx, "coupons", msg.MsgID, func(tx *sql.Tx) error {
//		return orders.GrantCoupon(ctx, tx, orderID, user)
//	})
package orders
