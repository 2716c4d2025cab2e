package config

import (
	"errors"
	"strings"
)

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

// fieldKeys maps the fields of a package's Options, as that package's
// validation errors name them ("SegmentSize", "Kafka.Brokers"), to the
// config keys they are read from, so that an error about a field can be
// reported as a [*KeyError] about its key.
type fieldKeys map[string]string

// keyError returns a *KeyError wrapping ErrInvalid and cause for the key
// of field, or for fallback (a section) when no key holds field.
func (fk fieldKeys) keyError(field, fallback, detail string, cause error) *KeyError {
	key, ok := fk[field]
	if !ok {
		key = fallback
	}
	return &KeyError{Key: key, Err: ErrInvalid, Cause: cause, Detail: detail}
}

// rename rewrites each word of detail that is exactly a field name as the
// field's key, for messages that name a second field. It suits messages
// that quote no user text (broker/store's), not mirror's, whose "Kafka
// topic %q" would become "mirror.kafka topic".
func (fk fieldKeys) rename(detail string) string {
	words := strings.Split(detail, " ")
	for i, w := range words {
		if key, ok := fk[w]; ok {
			words[i] = key
		}
	}
	return strings.Join(words, " ")
}
