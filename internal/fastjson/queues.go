package fastjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Queue is RocketMQ's MessageQueue as a JSON object: the key of the
// offset tables in ConsumeStats, TopicStatsTable and ResetOffsetBody.
type Queue struct {
	BrokerName string `json:"brokerName"`
	QueueID    int32  `json:"queueId"`
	Topic      string `json:"topic"`
}

// EachQueueEntry calls fn with each entry of the map b holds in field
// (such as "offsetTable"), keyed by MessageQueue objects as fastjson
// writes it ({{"brokerName":..,"queueId":..,"topic":..}:value,...}),
// which encoding/json cannot read in one go; value decodes the entry's
// value. A document without the field has no entries.
func EachQueueEntry(b []byte, field string, fn func(key Queue, value func(any) error) error) error {
	p, ok := atField(b, field)
	if !ok {
		return nil
	}
	return eachEntry(p, func(key Queue) error { return fn(key, p.value) })
}

// EachQueueEntryOf is EachQueueEntry of a map keyed by MessageQueue
// objects that is the whole of b (a value EachObjectEntry gave).
func EachQueueEntryOf(b []byte, fn func(key Queue, value func(any) error) error) error {
	p := &scanner{b: b, field: "map"}
	return eachEntry(p, func(key Queue) error { return fn(key, p.value) })
}

// EachObjectEntry calls fn with each entry of the object b holds in field,
// keyed by strings, and the bytes of the entry's value, which may hold
// maps keyed by MessageQueue objects (see EachQueueEntryOf), as
// RocketMQ's GetConsumerStatusBody.consumerTable does. A document without
// the field has no entries.
func EachObjectEntry(b []byte, field string, fn func(key string, value []byte) error) error {
	p, ok := atField(b, field)
	if !ok {
		return nil
	}
	return eachEntry(p, func(key string) error {
		v, err := p.skip()
		if err != nil {
			return err
		}
		return fn(key, v)
	})
}

// atField returns a scanner at the value of field in b, or false if b has
// no such field.
func atField(b []byte, field string) (*scanner, bool) {
	name := []byte(`"` + field + `":`)
	i := bytes.Index(b, name)
	if i < 0 {
		return nil, false
	}
	return &scanner{b: b, pos: i + len(name), field: field}, true
}

// eachEntry walks the object at p's position, whose keys decode as K:
// for each entry it decodes the key and calls fn, which reads the value.
func eachEntry[K any](p *scanner, fn func(key K) error) error {
	if !p.expect('{') {
		return fmt.Errorf("%s is not an object", p.field)
	}
	for n := 0; !p.expect('}'); n++ {
		if n > 0 && !p.expect(',') {
			return fmt.Errorf("%s: want ',' at byte %d", p.field, p.pos)
		}
		var key K
		if err := p.value(&key); err != nil {
			return err
		}
		if !p.expect(':') {
			return fmt.Errorf("%s: want ':' at byte %d", p.field, p.pos)
		}
		if err := fn(key); err != nil {
			return err
		}
	}
	return nil
}

// errTruncated is a map that ends before its closing brace.
var errTruncated = errors.New("unexpected end")

// scanner walks a fastjson document one JSON value at a time.
type scanner struct {
	b     []byte
	pos   int
	field string
}

// expect skips white space and consumes c if it comes next.
func (s *scanner) expect(c byte) bool {
	for s.pos < len(s.b) && (s.b[s.pos] == ' ' || s.b[s.pos] == '\t' || s.b[s.pos] == '\n' || s.b[s.pos] == '\r') {
		s.pos++
	}
	if s.pos < len(s.b) && s.b[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// value decodes the JSON value at the current position into v.
func (s *scanner) value(v any) error {
	if s.pos >= len(s.b) {
		return fmt.Errorf("%s at byte %d: %w", s.field, s.pos, errTruncated)
	}
	dec := json.NewDecoder(bytes.NewReader(s.b[s.pos:]))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s at byte %d: %w", s.field, s.pos, err)
	}
	s.pos += int(dec.InputOffset())
	return nil
}

// skip moves past the value at the current position, whatever it holds
// (fastjson's object keys too), and returns its bytes.
func (s *scanner) skip() ([]byte, error) {
	s.expect(' ') // skips white space; a value never starts with ' '
	start, depth, inString := s.pos, 0, false
	for i := s.pos; i < len(s.b); i++ {
		c := s.b[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
				if depth == 0 {
					s.pos = i + 1
					return s.b[start:s.pos], nil
				}
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth == 0 { // the end of a scalar that closes its container
				s.pos = i
				return s.b[start:i], nil
			}
			if depth--; depth == 0 {
				s.pos = i + 1
				return s.b[start:s.pos], nil
			}
		case depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			s.pos = i
			return s.b[start:i], nil
		}
	}
	return nil, fmt.Errorf("%s at byte %d: %w", s.field, start, errTruncated)
}
