package filter

import (
	"fmt"
	"strings"
)

// tokKind is the kind of a lexical token. The set and the matching rules
// (longest match wins; on a tie a reserved word beats an identifier) follow
// the TOKEN sections of RocketMQ's SelectorParser.jj.
type tokKind uint8

const (
	tEOF tokKind = iota
	tNot
	tAnd
	tOr
	tBetween
	tIn
	tTrue
	tFalse
	tNull
	tIs
	tContains
	tStartsWith
	tEndsWith
	tDecimal
	tFloat
	tString
	tIdent
	tEq     // =
	tNe     // <>
	tGt     // >
	tGe     // >=
	tLt     // <
	tLe     // <=
	tLParen // (
	tComma  // ,
	tRParen // )
	tPlus   // +
	tMinus  // -
)

// keywords are the reserved words, matched without regard to case.
var keywords = map[string]tokKind{
	"NOT": tNot, "AND": tAnd, "OR": tOr, "BETWEEN": tBetween, "IN": tIn,
	"TRUE": tTrue, "FALSE": tFalse, "NULL": tNull, "IS": tIs,
	"CONTAINS": tContains, "STARTSWITH": tStartsWith, "ENDSWITH": tEndsWith,
}

// token is one lexical token: its kind, its text as written and the byte
// offset where it starts.
type token struct {
	kind tokKind
	text string
	pos  int
}

// describe names a token for an error message.
func (t token) describe() string {
	if t.kind == tEOF {
		return "end of input"
	}
	return fmt.Sprintf("%q", t.text)
}

// lexer turns the input into tokens on demand, like JavaCC's token
// manager: a token is only scanned when the parser looks at it, so text
// after the last token the parser needs is never scanned.
type lexer struct {
	src string
	off int
	buf [2]token // tokens scanned ahead
	n   int      // how many of buf are valid
}

// peek returns the i-th token ahead (0 or 1) without consuming it.
func (l *lexer) peek(i int) (token, error) {
	for l.n <= i {
		t, err := l.scan()
		if err != nil {
			return token{}, err
		}
		l.buf[l.n] = t
		l.n++
	}
	return l.buf[i], nil
}

// next consumes and returns the next token.
func (l *lexer) next() (token, error) {
	t, err := l.peek(0)
	if err != nil {
		return t, err
	}
	l.buf[0] = l.buf[1]
	l.n--
	return t, nil
}

// skip passes over white space and comments. A "--" comment needs a line
// end to finish it: without one, the grammar's LINE_COMMENT does not match
// and "-" is scanned as a minus sign instead.
func (l *lexer) skip() error {
	for l.off < len(l.src) {
		switch c := l.src[l.off]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			l.off++
		case strings.HasPrefix(l.src[l.off:], "--"):
			end := strings.IndexAny(l.src[l.off:], "\r\n")
			if end < 0 {
				return nil
			}
			l.off += end + 1
			if l.src[l.off-1] == '\r' && l.off < len(l.src) && l.src[l.off] == '\n' {
				l.off++
			}
		case strings.HasPrefix(l.src[l.off:], "/*"):
			end := strings.Index(l.src[l.off+2:], "*/")
			if end < 0 {
				return syntaxErr(l.off, "unterminated comment")
			}
			l.off += 2 + end + 2
		default:
			return nil
		}
	}
	return nil
}

func (l *lexer) scan() (token, error) {
	if err := l.skip(); err != nil {
		return token{}, err
	}
	start := l.off
	if start >= len(l.src) {
		return token{kind: tEOF, pos: start}, nil
	}
	s := l.src[start:]
	c := s[0]
	kind, n := tEOF, 0
	switch {
	case isDigit(c) || (c == '.' && len(s) > 1 && isDigit(s[1])):
		kind, n = scanNumber(s)
	case c == '\'':
		n = scanString(s)
		if n < 0 {
			return token{}, syntaxErr(start, "unterminated string literal")
		}
		kind = tString
	case isIdentStart(c):
		n = 1
		for n < len(s) && isIdentPart(s[n]) {
			n++
		}
		kind = tIdent
		if k, ok := keywords[strings.ToUpper(s[:n])]; ok {
			kind = k
		}
	default:
		kind, n = scanOperator(s)
	}
	if n == 0 {
		return token{}, syntaxErr(start, fmt.Sprintf("unexpected character %q", firstRune(s)))
	}
	l.off += n
	return token{kind: kind, text: s[:n], pos: start}, nil
}

func scanOperator(s string) (tokKind, int) {
	two := ""
	if len(s) >= 2 {
		two = s[:2]
	}
	switch two {
	case "<>":
		return tNe, 2
	case ">=":
		return tGe, 2
	case "<=":
		return tLe, 2
	}
	switch s[0] {
	case '=':
		return tEq, 1
	case '>':
		return tGt, 1
	case '<':
		return tLt, 1
	case '(':
		return tLParen, 1
	case ')':
		return tRParen, 1
	case ',':
		return tComma, 1
	case '+':
		return tPlus, 1
	case '-':
		return tMinus, 1
	}
	return tEOF, 0
}

// scanNumber matches the longest of DECIMAL_LITERAL ("0", or a non-zero
// digit, digits and an optional L) and FLOATING_POINT_LITERAL (digits "."
// digits? exponent?, "." digits exponent?, or digits exponent).
func scanNumber(s string) (tokKind, int) {
	dec := 0
	if s[0] == '0' {
		dec = 1
	} else if isDigit(s[0]) {
		dec = digitsAt(s, 0)
		if dec < len(s) && (s[dec] == 'l' || s[dec] == 'L') {
			dec++
		}
	}
	fl := 0
	i := digitsAt(s, 0)
	switch {
	case i < len(s) && s[i] == '.':
		i = digitsAt(s, i+1)
		fl = i + exponentAt(s, i)
	case i > 0:
		if e := exponentAt(s, i); e > 0 {
			fl = i + e
		}
	}
	if fl > dec {
		return tFloat, fl
	}
	return tDecimal, dec
}

// digitsAt returns the offset after the run of digits starting at i.
func digitsAt(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// exponentAt returns the length of a complete exponent ("E", an optional
// sign, digits) starting at i, or 0.
func exponentAt(s string, i int) int {
	if i >= len(s) || (s[i] != 'e' && s[i] != 'E') {
		return 0
	}
	j := i + 1
	if j < len(s) && (s[j] == '+' || s[j] == '-') {
		j++
	}
	k := digitsAt(s, j)
	if k == j {
		return 0
	}
	return k - i
}

// scanString returns the length of the quoted literal at the start of s
// (” stands for one quote), or -1 when it is not closed.
func scanString(s string) int {
	for i := 1; i < len(s); i++ {
		if s[i] != '\'' {
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			i++
			continue
		}
		return i + 1
	}
	return -1
}

// unquote decodes a string literal's text.
func unquote(lit string) string {
	return strings.ReplaceAll(lit[1:len(lit)-1], "''", "'")
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isIdentStart(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || c == '_' || c == '$'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || isDigit(c) }

func firstRune(s string) rune {
	for _, r := range s {
		return r
	}
	return 0
}
