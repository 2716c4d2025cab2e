package orders

// schemaVersion is the version of schema, kept in a SQLite file's
// user_version: Open refuses a file of a higher one (ErrSchemaVersion).
const schemaVersion = 1

// schema creates the tables if they are missing; running it again changes
// nothing. The SQL is written for SQLite and PostgreSQL alike: TEXT and
// BIGINT columns (quantities too: stock is an int64, and PostgreSQL's
// INTEGER is 32 bits), times as BIGINT Unix milliseconds, "user" quoted
// because PostgreSQL reserves the word.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS orders (
		id         TEXT PRIMARY KEY,
		"user"     TEXT NOT NULL,
		amount     BIGINT NOT NULL,
		sku        TEXT NOT NULL,
		qty        BIGINT NOT NULL,
		status     TEXT NOT NULL,
		payment_id TEXT NOT NULL DEFAULT '',
		reason     TEXT NOT NULL DEFAULT '',
		created_at BIGINT NOT NULL,
		updated_at BIGINT NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS inventory (
		sku TEXT PRIMARY KEY,
		qty BIGINT NOT NULL CHECK (qty >= 0)
	)`,
	`CREATE TABLE IF NOT EXISTS payments (
		id         TEXT PRIMARY KEY,
		order_id   TEXT NOT NULL,
		amount     BIGINT NOT NULL,
		created_at BIGINT NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS payments_order_id ON payments (order_id)`,
	// The transaction log, and the fence: one immutable row per local
	// transaction id, written either by the local transaction (COMMITTED)
	// or by the check-back resolver (FENCED), whichever inserts first.
	`CREATE TABLE IF NOT EXISTS txn_log (
		txn_id     TEXT PRIMARY KEY,
		state      TEXT NOT NULL CHECK (state IN ('COMMITTED', 'FENCED')),
		created_at BIGINT NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS consumer_dedup (
		grp    TEXT NOT NULL,
		msg_id TEXT NOT NULL,
		PRIMARY KEY (grp, msg_id)
	)`,
	// No key: a coupon granted twice shows as a count of 2.
	`CREATE TABLE IF NOT EXISTS coupons (
		order_id   TEXT NOT NULL,
		"user"     TEXT NOT NULL,
		granted_at BIGINT NOT NULL
	)`,
}
