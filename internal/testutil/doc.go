// Package testutil holds what every package's tests share: polling for a
// condition with a deadline instead of sleeping for an event, and a buffer
// that a logger writes while a test polls it.
package testutil
