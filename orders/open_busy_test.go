package orders

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenWaitsOutAnotherOpener checks that Open succeeds when another
// connection holds the fresh database's lock for a while (as a second
// process opening the same new file at the same moment does): it retries
// while SQLite answers SQLITE_BUSY, which busy_timeout does not cover when
// the connection switches the file to WAL.
func TestOpenWaitsOutAnotherOpener(t *testing.T) {
	path := filepath.Join(t.TempDir(), "orders.db")
	other, err := sql.Open(DefaultDriver, "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetMaxOpenConns(1)
	tx, err := other.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("CREATE TABLE held (x INTEGER)"); err != nil { // takes the write lock
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, pragmas, _ := strings.Cut(DefaultDSN, "?")
		db, err := Open(context.Background(), Options{DSN: "file:" + path + "?" + pragmas})
		if err == nil {
			db.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Open returned while the other connection held the lock: %v", err)
	case <-time.After(300 * time.Millisecond): // the other opener's transaction lasts this long
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Open after the lock was released: %v", err)
	}
}
