package message

import "errors"

// Errors returned by the decoder and encoder. Callers test them with
// errors.Is; the returned errors wrap them with the offending detail.
var (
	// ErrTruncated means the input ends before the record it announces.
	ErrTruncated = errors.New("message: truncated record")
	// ErrBadMagic means the magic code is neither a message nor a blank record.
	ErrBadMagic = errors.New("message: bad magic code")
	// ErrBadLength means a length field is negative or disagrees with the record size.
	ErrBadLength = errors.New("message: inconsistent length field")
	// ErrBadCRC means the body does not match its stored CRC32.
	ErrBadCRC = errors.New("message: body CRC mismatch")
	// ErrTopicTooLong means a topic does not fit the one-byte length field (max 127 bytes).
	ErrTopicTooLong = errors.New("message: topic longer than 127 bytes")
	// ErrPropertiesTooLong means the encoded properties exceed 32767 bytes.
	ErrPropertiesTooLong = errors.New("message: properties longer than 32767 bytes")
	// ErrBlank marks a blank (end-of-segment filler) record; it is not a message.
	ErrBlank = errors.New("message: blank end-of-segment record")
	// ErrBadTopic means a topic name is empty, too long or has characters outside [%|a-zA-Z0-9_-].
	ErrBadTopic = errors.New("message: illegal topic name")
	// ErrBadGroup means a group name is empty, too long or has characters outside [%|a-zA-Z0-9_-].
	ErrBadGroup = errors.New("message: illegal group name")
	// ErrBadMessageID means a string is not a RocketMQ offset message id.
	ErrBadMessageID = errors.New("message: malformed message id")
	// ErrBadCompression means a body flagged FlagCompressed does not
	// inflate (not what its compression type says, truncated, or past
	// MaxInflatedSize).
	ErrBadCompression = errors.New("message: compressed body does not inflate")
)
