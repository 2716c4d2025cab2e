// Package storetest holds test helpers for packages built on the store
// (the delay scheduler, transactions): ways to make the store misbehave
// on purpose from outside it.
package storetest
