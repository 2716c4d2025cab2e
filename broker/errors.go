package broker

import "errors"

// Errors returned by the broker; test them with errors.Is.
var (
	// ErrInvalidOptions means Options.Validate rejected a field.
	ErrInvalidOptions = errors.New("broker: invalid options")
	// ErrClosed means the broker was closed.
	ErrClosed = errors.New("broker: closed")
	// ErrTopicNotExist means a topic is unknown and auto-creation is off.
	ErrTopicNotExist = errors.New("broker: topic does not exist")
)
