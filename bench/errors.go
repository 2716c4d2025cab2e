package bench

import "errors"

// Errors returned by the benchmarks. They arrive wrapped with detail; test
// them with errors.Is.
var (
	// ErrInvalidOptions means an options struct has a field out of range;
	// the message names the field.
	ErrInvalidOptions = errors.New("bench: invalid options")
)
