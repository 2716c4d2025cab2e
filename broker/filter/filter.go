package filter

import (
	"errors"
	"fmt"
)

// Limits on what [Compile] accepts. RocketMQ has none; they keep a hostile
// subscription from costing the broker memory or stack.
const (
	// MaxLength is the longest expression, in bytes.
	MaxLength = 64 << 10
	// MaxDepth bounds nesting: parentheses and unary operators inside one
	// another, and the height of the compiled tree (a chain such as
	// "a = b = c" nests too; AND and OR chains do not).
	MaxDepth = 100
)

var (
	// ErrSyntax is wrapped by every error from [Compile]: the expression
	// is not one RocketMQ's broker would accept. The message names the
	// byte offset and the offending token.
	ErrSyntax = errors.New("filter: syntax error")
	// ErrTooLong is wrapped, with ErrSyntax, when the expression is longer
	// than [MaxLength].
	ErrTooLong = errors.New("filter: expression too long")
	// ErrTooDeep is wrapped, with ErrSyntax, when the expression nests
	// deeper than [MaxDepth].
	ErrTooDeep = errors.New("filter: expression nested too deeply")
)

// Expr is a compiled filter expression. It is immutable and safe for
// concurrent use.
type Expr struct {
	src  string
	root node
}

// Compile parses a SQL92 filter expression. Errors wrap [ErrSyntax] and
// name the position and token.
func Compile(expr string) (*Expr, error) {
	if len(expr) > MaxLength {
		return nil, fmt.Errorf("%w: %w: %d bytes, limit %d", ErrSyntax, ErrTooLong, len(expr), MaxLength)
	}
	p := parser{lx: lexer{src: expr}}
	root, err := p.parse()
	if err != nil {
		return nil, err
	}
	return &Expr{src: expr, root: root}, nil
}

// Match evaluates e against a message's properties; get returns a
// property's value and whether it is set. A result that is not boolean
// TRUE (false, NULL/unknown, a type mismatch) is no match, as RocketMQ.
func (e *Expr) Match(get func(name string) (string, bool)) bool {
	v, ok := e.root.eval(get)
	return ok && v.k == kBool && v.b
}

// String returns the expression as given.
func (e *Expr) String() string { return e.src }

func syntaxErr(pos int, msg string) error {
	return fmt.Errorf("%w: %s at offset %d", ErrSyntax, msg, pos)
}

func unexpected(t token, want string) error {
	return fmt.Errorf("%w: unexpected %s at offset %d, want %s", ErrSyntax, t.describe(), t.pos, want)
}

func tooDeep(pos int) error {
	return fmt.Errorf("%w: %w: more than %d levels at offset %d", ErrSyntax, ErrTooDeep, MaxDepth, pos)
}
