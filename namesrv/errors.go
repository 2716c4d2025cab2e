package namesrv

import "errors"

// Errors returned by the name server; test them with errors.Is.
var (
	// ErrInvalidOptions means Options.Validate rejected a field.
	ErrInvalidOptions = errors.New("namesrv: invalid options")
	// ErrClosed means the server was already closed.
	ErrClosed = errors.New("namesrv: closed")
	// ErrBadRequest means a request lacked a field or carried a body that
	// does not decode; the client gets an error response.
	ErrBadRequest = errors.New("namesrv: bad request")
	// ErrBrokerConflict means a registration named a broker (name and id)
	// that another live, connected broker already holds.
	ErrBrokerConflict = errors.New("namesrv: broker name conflict")
)
