// Package remotetest holds what tests of remoting servers (the broker, the
// name server) share: a client connection closed with the test, and a call
// that fails the test on a transport error.
package remotetest
