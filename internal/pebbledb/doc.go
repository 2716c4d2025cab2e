// Package pebbledb opens the Pebble databases the store's key index and the
// delay scheduler's timer index live in, with one set of options.
package pebbledb
