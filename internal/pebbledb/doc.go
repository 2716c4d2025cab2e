// Package pebbledb opens the Pebble databases of the delay scheduler's
// timer index, the transaction service's state and the message lifecycle
// record, with one set of options.
package pebbledb
