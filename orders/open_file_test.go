package orders

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// userVersion reads the SQLite file's user_version with a connection of
// its own.
func userVersion(t *testing.T, path string) int {
	t.Helper()
	sdb, err := sql.Open(DefaultDriver, "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	var v int
	if err := sdb.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// A database SQLite can open only for reading (a file the process may not
// write; here mode=ro, since the tests may run as root, whom file modes do
// not stop) fails Open: the worker would otherwise report ready and fail
// every local transaction, fence and consume, retrying for ever.
func TestOpenReadOnlyDatabase(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t)
	db := openStocked(ctx, t, dir)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ro := "file:" + filepath.Join(dir, "orders.db") + "?mode=ro&_pragma=busy_timeout(5000)&_txlock=immediate"
	db, err := Open(ctx, Options{DSN: ro})
	if err == nil {
		db.Close()
		t.Fatal("Open of a read-only database succeeded")
	}
	if !strings.Contains(err.Error(), "readonly") {
		t.Fatalf("Open of a read-only database: %v, want it to say the database is read-only", err)
	}
	db = openTest(t, func(o *Options) { o.DSN = fileDSN(dir) })
	if n := stock(t, db, "sku"); n != 5 {
		t.Fatalf("stock after the refused open %d, want 5", n)
	}
}

// A database a newer version wrote (a higher user_version) is refused
// with ErrSchemaVersion, and left as it is.
func TestOpenNewerSchema(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "orders.db")
	ctx := ctxT(t)
	db := openStocked(ctx, t, dir)
	if _, err := db.sql.ExecContext(ctx, `PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, Options{DSN: fileDSN(dir)})
	if err == nil {
		db.Close()
		t.Fatal("Open of a database of schema version 99 succeeded")
	}
	if !errors.Is(err, ErrSchemaVersion) || !strings.Contains(err.Error(), "99") {
		t.Fatalf("Open of a newer database: %v, want ErrSchemaVersion naming version 99", err)
	}
	if v := userVersion(t, path); v != 99 {
		t.Fatalf("user_version after the refused open %d, want 99 kept", v)
	}
}

// Open marks a database it created, or one an older version created (no
// user_version), with its schema version.
func TestOpenMarksSchemaVersion(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "orders.db")
	old, err := sql.Open(DefaultDriver, "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range schema {
		if _, err := old.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	openTest(t, func(o *Options) { o.DSN = fileDSN(dir) })
	if v := userVersion(t, path); v != schemaVersion {
		t.Fatalf("user_version %d, want %d", v, schemaVersion)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

// A newer version's file whose tables this version's schema statements
// cannot run against (here payments.order_id renamed, and the index on it
// gone) is refused with ErrSchemaVersion too, not with the statement's
// error: the version is checked before them.
func TestOpenNewerSchemaOfOtherColumns(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "orders.db")
	newer, err := sql.Open(DefaultDriver, "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE payments (id TEXT PRIMARY KEY, order_ref TEXT NOT NULL, amount BIGINT NOT NULL, created_at BIGINT NOT NULL)`,
		`PRAGMA user_version = 2`,
	} {
		if _, err := newer.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	if err := newer.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctxT(t), Options{DSN: fileDSN(dir)})
	if err == nil {
		db.Close()
		t.Fatal("Open of a database of schema version 2 succeeded")
	}
	if !errors.Is(err, ErrSchemaVersion) {
		t.Fatalf("Open of a newer database: %v, want ErrSchemaVersion", err)
	}
	if v := userVersion(t, path); v != 2 {
		t.Fatalf("user_version after the refused open %d, want 2 kept", v)
	}
}

// openStocked opens the database file in dir and stocks 5 of "sku".
func openStocked(ctx context.Context, t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(ctx, Options{DSN: fileDSN(dir)})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetStock(ctx, "sku", 5); err != nil {
		t.Fatal(err)
	}
	return db
}
