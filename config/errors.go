package config

import "errors"

// Errors returned by [Load], [Config.Validate] and [Config.StoreOptions].
// They arrive wrapped, usually in a [*KeyError]; test them with errors.Is.
var (
	// ErrInvalid means a value is of the wrong type or out of range.
	ErrInvalid = errors.New("invalid value")
	// ErrUnknownKey means the file holds a key or section that halfback does
	// not know (usually a typo).
	ErrUnknownKey = errors.New("unknown key")
	// ErrSyntax means the file is not YAML, or not a mapping of sections.
	ErrSyntax = errors.New("config: bad YAML")
)

// KeyError reports a problem with one key. Its message is
//
//	config: <Key>: <Detail>
type KeyError struct {
	// Key is the full path as written in config.yaml, such as
	// "store.segmentSize", or a section name such as "store".
	Key string
	// Detail says what is wrong and, where it helps, what is wanted.
	Detail string
	// Err is the sentinel: [ErrInvalid] or [ErrUnknownKey].
	Err error
	// Cause, if not nil, is the underlying error (for example one from
	// broker/store); errors.Is and errors.As see it too.
	Cause error
}

func (e *KeyError) Error() string { return "config: " + e.Key + ": " + e.Detail }

// Unwrap returns the sentinel and, if set, the cause.
func (e *KeyError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Err, e.Cause}
	}
	return []error{e.Err}
}

// invalid returns a *KeyError wrapping ErrInvalid.
func invalid(key, detail string) error {
	return &KeyError{Key: key, Detail: detail, Err: ErrInvalid}
}
