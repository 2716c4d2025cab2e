package remoting

import (
	"errors"
	"fmt"
)

// Errors returned by this package. They are wrapped with detail; test them
// with errors.Is.
var (
	// ErrFrameTooLarge means a frame's length prefix claims more than the
	// reader's maximum frame size, or a frame to be sent is larger than the
	// connection's. Nothing of the claimed size was allocated.
	ErrFrameTooLarge = errors.New("remoting: frame too large")
	// ErrMalformedFrame means a frame is not a valid remoting frame: a
	// negative or too short length, a header length beyond the frame, an
	// unknown serialize type, or a header that does not decode or holds
	// more than MaxExtFields ext fields.
	ErrMalformedFrame = errors.New("remoting: malformed frame")
	// ErrCodeOutOfRange means a JSON header carries a code outside int16
	// (RocketMQ 5's POP_MESSAGE = 200050, for example). The frame was read
	// whole, so the stream is still in sync; see [DecodeError].
	ErrCodeOutOfRange = errors.New("remoting: request code out of int16 range")
	// ErrInvalidCommand means a command cannot be encoded: an unknown
	// serialize type, more than MaxExtFields ext fields, a header over
	// 16 MiB, an ext-field key over 32767 bytes, or a frame over 2 GiB.
	ErrInvalidCommand = errors.New("remoting: command cannot be encoded")
	// ErrConnClosed means the connection was closed before or while a call
	// was in flight.
	ErrConnClosed = errors.New("remoting: connection closed")
	// ErrIdleTimeout is the close reason of a connection on which nothing
	// was received for IdleTimeout.
	ErrIdleTimeout = errors.New("remoting: connection idle")
	// ErrServerClosed is the close reason of connections that
	// Server.Close closed.
	ErrServerClosed = errors.New("remoting: server closed")
	// ErrInvalidOptions means ServerOptions or DialOptions failed validation.
	ErrInvalidOptions = errors.New("remoting: invalid options")
)

// DecodeError is the error [Decode] returns for bad input. It wraps
// ErrFrameTooLarge, ErrMalformedFrame or ErrCodeOutOfRange and says how much
// of the header was understood, so a server can answer the request it
// belonged to before closing the connection.
type DecodeError struct {
	// Err is the sentinel: ErrFrameTooLarge, ErrMalformedFrame or ErrCodeOutOfRange.
	Err error
	// Reason says what was wrong.
	Reason string
	// HeaderKnown reports that Opaque, Flag and SerializeType were read
	// from the header and can address a response.
	HeaderKnown bool
	// Opaque and Flag are the frame's, when HeaderKnown.
	Opaque int32
	Flag   int32
	// SerializeType is the frame's header encoding, when HeaderKnown.
	SerializeType SerializeType
	// Code is the out-of-range code, for ErrCodeOutOfRange.
	Code int64
	// InSync reports that the whole frame was consumed, so the next frame
	// can still be read from the stream.
	InSync bool
}

func (e *DecodeError) Error() string { return fmt.Sprintf("%v: %s", e.Err, e.Reason) }

// Unwrap returns the sentinel.
func (e *DecodeError) Unwrap() error { return e.Err }

// respondable reports whether the bad frame was a two-way request whose
// sender waits for an answer.
func (e *DecodeError) respondable() bool {
	return e.HeaderKnown && e.Flag&(FlagResponse|FlagOneway) == 0
}

func malformed(format string, args ...any) *DecodeError {
	return &DecodeError{Err: ErrMalformedFrame, Reason: fmt.Sprintf(format, args...)}
}
