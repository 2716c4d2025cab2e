// Package jsonenc appends JSON strings by hand, byte for byte as
// encoding/json writes them without HTML escaping, for the hot paths that
// encode JSON without reflection: a remoting header on every request, a
// lifecycle event on every message.
package jsonenc
