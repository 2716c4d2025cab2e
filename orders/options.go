package orders

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"

	// The default driver, "sqlite": pure Go, no cgo.
	_ "modernc.org/sqlite"
)

// Defaults.
const (
	// DefaultDriver is the database/sql driver used when Options.Driver is
	// empty: modernc.org/sqlite, registered by this package.
	DefaultDriver = "sqlite"
	// DefaultDSN is the SQLite database used when Options.DSN is empty
	// and the driver is SQLite: orders.db in the working directory, in WAL
	// mode, waiting up to 5 s for another process's write lock instead of
	// failing with SQLITE_BUSY, and taking the write lock when a
	// transaction begins (BEGIN IMMEDIATE). The parameters are
	// modernc.org/sqlite's (SQLite-only).
	DefaultDSN = "file:orders.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate"
)

// Options configure [Open].
type Options struct {
	// Driver is the database/sql driver name. Default "sqlite"
	// (modernc.org/sqlite). Another database's driver (PostgreSQL's
	// "pgx", say) must be registered by importing it in main.
	Driver string
	// DSN is the driver's data source name. Default [DefaultDSN] for
	// SQLite; required for any other driver.
	DSN string
	// MaxOpenConns caps the connection pool. 0 means 1 for SQLite (one
	// writer at a time; see the package documentation) and no limit for
	// other drivers.
	MaxOpenConns int
}

// isSQLite reports whether driver is a SQLite driver.
func isSQLite(driver string) bool { return driver == "sqlite" || driver == "sqlite3" }

// withDefaults fills the zero fields.
func (o Options) withDefaults() Options {
	if o.Driver == "" {
		o.Driver = DefaultDriver
	}
	if o.DSN == "" && isSQLite(o.Driver) {
		o.DSN = DefaultDSN
	}
	if o.MaxOpenConns == 0 && isSQLite(o.Driver) {
		o.MaxOpenConns = 1
	}
	return o
}

// Validate reports the first unusable field, wrapping ErrInvalidOptions.
// Zero fields are valid where they have a default.
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case !slices.Contains(sql.Drivers(), o.Driver):
		return fmt.Errorf("%w: driver %q is not registered (import its package; registered: %s)",
			ErrInvalidOptions, o.Driver, strings.Join(sql.Drivers(), ", "))
	case strings.TrimSpace(o.DSN) == "":
		return fmt.Errorf("%w: DSN is required for driver %q", ErrInvalidOptions, o.Driver)
	case o.MaxOpenConns < 0:
		return fmt.Errorf("%w: MaxOpenConns %d is negative", ErrInvalidOptions, o.MaxOpenConns)
	}
	return nil
}
