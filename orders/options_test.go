package orders

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// refusingDriver is a registered driver other than SQLite, whose
// connections always fail.
type refusingDriver struct{}

func (refusingDriver) Open(string) (driver.Conn, error) { return nil, errors.New("refused") }

const refusingName = "orders-test-refusing"

func init() { sql.Register(refusingName, refusingDriver{}) }

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.Driver != "sqlite" || o.DSN != DefaultDSN || o.MaxOpenConns != 1 {
		t.Fatalf("defaults %+v", o)
	}
	o = Options{Driver: refusingName, DSN: "x"}.withDefaults()
	if o.MaxOpenConns != 0 {
		t.Fatalf("a non-SQLite driver got MaxOpenConns %d", o.MaxOpenConns)
	}
	if err := (Options{}).Validate(); err != nil {
		t.Fatalf("zero options: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string // in the message
	}{
		{"unknown driver", Options{Driver: "nosuchdb", DSN: "x"}, `driver "nosuchdb" is not registered`},
		{"empty DSN of another driver", Options{Driver: refusingName}, "DSN is required"},
		{"blank DSN", Options{DSN: "  "}, "DSN is required"},
		{"negative pool", Options{MaxOpenConns: -1}, "MaxOpenConns -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want ErrInvalidOptions saying %q", err, tc.want)
			}
			db, err := Open(ctxT(t), tc.o)
			if db != nil || !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("Open: %v, %v", db, err)
			}
		})
	}
}

// A database that cannot be reached fails Open with the driver's error.
func TestOpenUnreachable(t *testing.T) {
	if _, err := Open(ctxT(t), Options{Driver: refusingName, DSN: "x"}); err == nil ||
		errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("refusing driver: %v", err)
	}
	missing := "file:" + filepath.Join(t.TempDir(), "no", "such", "dir", "orders.db")
	if _, err := Open(ctxT(t), Options{DSN: missing}); err == nil {
		t.Fatal("Open of a file in a missing directory succeeded")
	}
}
