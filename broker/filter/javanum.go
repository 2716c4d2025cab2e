package filter

import (
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file converts property values the way RocketMQ's evaluator does
// with java.lang.Integer.valueOf, Long.valueOf, Double.valueOf and
// Boolean.valueOf, so that a value Java rejects is rejected here too.

// parseJavaInt parses s as Integer.valueOf (bits 32) or Long.valueOf
// (bits 64) would: an optional sign and decimal digits, no spaces, no
// underscores; any Unicode decimal digit counts as a digit.
func parseJavaInt(s string, bits int) (int64, bool) {
	if v, err := strconv.ParseInt(s, 10, bits); err == nil {
		return v, true
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return parseUnicodeInt(s, bits)
		}
	}
	return 0, false
}

// parseUnicodeInt is the slow path of parseJavaInt for digits outside
// ASCII (Java's Character.digit accepts every Unicode Nd digit).
func parseUnicodeInt(s string, bits int) (int64, bool) {
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" {
		return 0, false
	}
	limit := uint64(1)<<(bits-1) - 1
	if neg {
		limit++
	}
	var v uint64
	for _, r := range s {
		d, ok := digitValue(r)
		if !ok || v > (limit-uint64(d))/10 {
			return 0, false
		}
		v = v*10 + uint64(d)
	}
	if neg {
		return -int64(v), true // wraps to the minimum for v == 1<<63
	}
	return int64(v), true
}

// digitValue returns the value of a Unicode decimal digit. Nd digits come
// in runs of ten starting at zero, so the value is the distance from the
// start of the run, modulo ten.
func digitValue(r rune) (int, bool) {
	if r < utf8.RuneSelf {
		if '0' <= r && r <= '9' {
			return int(r - '0'), true
		}
		return 0, false
	}
	if !unicode.IsDigit(r) {
		return 0, false
	}
	start := r
	for start > 0 && r-start < 100 && unicode.IsDigit(start-1) {
		start--
	}
	return int(r-start) % 10, true
}

// parseJavaDouble parses s as Double.valueOf would: surrounding characters
// up to U+0020 are trimmed; then an optional sign and "NaN", "Infinity", a
// decimal number with an optional exponent, or a hexadecimal number with a
// binary exponent; then an optional f, F, d or D.
func parseJavaDouble(s string) (float64, bool) {
	s = strings.TrimFunc(s, func(r rune) bool { return r <= ' ' })
	body := s
	neg := false
	if body != "" && (body[0] == '+' || body[0] == '-') {
		neg = body[0] == '-'
		body = body[1:]
	}
	switch body {
	case "NaN":
		return math.NaN(), true
	case "Infinity":
		if neg {
			return math.Inf(-1), true
		}
		return math.Inf(1), true
	}
	if n := len(body); n > 0 {
		switch body[n-1] {
		case 'f', 'F', 'd', 'D':
			body = body[:n-1]
		}
	}
	var ok bool
	if len(body) > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X') {
		ok = isJavaHexFloat(body[2:])
	} else {
		ok = isJavaDecimalFloat(body)
	}
	if !ok {
		return 0, false
	}
	// The syntax is checked; ParseFloat rounds correctly and gives ±Inf on
	// overflow and zero on underflow, as Java does.
	v, err := strconv.ParseFloat(body, 64)
	if err != nil && !math.IsInf(v, 0) {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

// isJavaDecimalFloat reports whether s is digits with at most one ".",
// at least one digit, and an optional exponent.
func isJavaDecimalFloat(s string) bool {
	i := digitsAt(s, 0)
	n := i
	if i < len(s) && s[i] == '.' {
		j := digitsAt(s, i+1)
		n += j - i - 1
		i = j
	}
	if n == 0 {
		return false
	}
	if i == len(s) {
		return true
	}
	return exponentAt(s, i) == len(s)-i
}

// isJavaHexFloat reports whether s (after "0x") is hex digits with at most
// one ".", at least one digit, and a mandatory "p" exponent.
func isJavaHexFloat(s string) bool {
	i := hexDigitsAt(s, 0)
	n := i
	if i < len(s) && s[i] == '.' {
		j := hexDigitsAt(s, i+1)
		n += j - i - 1
		i = j
	}
	if n == 0 || i >= len(s) || (s[i] != 'p' && s[i] != 'P') {
		return false
	}
	i++
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	return i < len(s) && digitsAt(s, i) == len(s)
}

func hexDigitsAt(s string, i int) int {
	for i < len(s) && (isDigit(s[i]) || ('a' <= s[i]|0x20 && s[i]|0x20 <= 'f')) {
		i++
	}
	return i
}

// compareDouble is Java's Double.compare: NaN equals itself and is above
// everything, and -0.0 is below 0.0.
func compareDouble(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	ab, bb := doubleBits(a), doubleBits(b)
	switch {
	case ab < bb:
		return -1
	case ab > bb:
		return 1
	}
	return 0
}

// doubleBits is Java's doubleToLongBits: every NaN has one bit pattern.
func doubleBits(f float64) int64 {
	if f != f {
		return 0x7ff8000000000000
	}
	return int64(math.Float64bits(f))
}
