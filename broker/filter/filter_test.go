package filter

import (
	"errors"
	"strings"
	"testing"
)

// props builds a getter from name, value pairs.
func props(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

type matchCase struct {
	expr  string
	props []string
	want  bool
}

// Cases follow RocketMQ's filter module (ComparisonExpression,
// LogicExpression, UnaryExpression, ConstantExpression) and its
// ExpressionTest.
var matchCases = []matchCase{
	// Equality on strings and numbers.
	{"a = 'x'", []string{"a", "x"}, true},
	{"a = 'x'", []string{"a", "y"}, false},
	{"a = 'x'", nil, false},
	{"a <> 'x'", []string{"a", "y"}, true},
	{"a <> 'x'", nil, false}, // NULL = 'x' is NULL; NOT NULL is NULL
	{"a = 3", []string{"a", "3"}, true},
	{"a = 3", []string{"a", "+3"}, true},  // Integer.valueOf accepts a sign
	{"a = 3", []string{"a", "003"}, true}, // and leading zeros
	{"a = 3", []string{"a", "٣"}, true},   // and any Unicode digit
	{"a = 3.0", []string{"a", "3"}, true}, // Double.valueOf("3")
	{"a = 3.0", []string{"a", " 3 "}, true},
	{"a = 3.0", []string{"a", "3d"}, true},      // Java float suffix
	{"a = 3.0", []string{"a", "0x1.8p1"}, true}, // Java hex float
	{"a = 3", []string{"a", "3.0"}, false},      // Integer.valueOf throws
	{"a = 3", []string{"a", " 3"}, false},
	{"a = 3", []string{"a", "3_0"}, false},
	{"a = 3000000000", []string{"a", "3000000000"}, true}, // Long literal
	{"a = 3", []string{"a", "3000000000"}, false},         // overflows Integer: throws
	{"a = b", []string{"a", "3.14", "b", "3.14"}, true},
	{"a = b", []string{"a", "1", "b", "1.0"}, false}, // two strings: no conversion
	{"a <> b", []string{"a", "3.14", "b", "3.141"}, true},
	// ComparisonExpression.doCreateEqual: two nulls are equal, a null on the
	// right is FALSE, a null on the left is NULL.
	{"a = b", nil, true},
	{"a = b", []string{"b", "1"}, false},
	{"a <> b", []string{"a", "1"}, true},  // a = NULL is FALSE, so <> is TRUE
	{"a <> b", []string{"b", "1"}, false}, // NULL = b is NULL
	{"'x' <> a", nil, true},
	{"a = -NULL", nil, true}, // -NULL is not the NULL literal, so it compiles

	// Booleans (ComparisonExpression.__compare converts the string).
	{"a = TRUE", []string{"a", "true"}, true},
	{"a = TRUE", []string{"a", "TrUe"}, true},
	{"a = TRUE", []string{"a", "yes"}, false},
	{"a = FALSE", []string{"a", "yes"}, true}, // Boolean.valueOf("yes") is false
	{"a=TRUE OR b=FALSE", []string{"a", "false", "b", "true"}, false},
	{"TRUE = a", []string{"a", "true"}, false}, // Boolean then String: ClassCastException
	{"TRUE = a OR TRUE", []string{"a", "true"}, false},
	{"TRUE = TRUE", nil, true},
	{"'true' = TRUE", nil, true},
	{"1 = TRUE", nil, false}, // number vs Boolean compares as "less"
	{"TRUE", nil, true},
	{"FALSE", nil, false},
	{"NULL", nil, false},
	{"a", []string{"a", "true"}, false}, // a property is never a Boolean
	{"NOT a", []string{"a", "true"}, true},
	{"NOT a", nil, false},
	{"(a = 1) = TRUE", []string{"a", "1"}, true},

	// Ordering.
	{"a > 5", []string{"a", "6"}, true},
	{"a > 5", []string{"a", "5"}, false},
	{"a >= 5", []string{"a", "5"}, true},
	{"a < 5", []string{"a", "-6"}, true},
	{"a <= 5", []string{"a", "5"}, true},
	{"a > 5", nil, false},
	{"a > 5", []string{"a", "5.5"}, false}, // Integer.valueOf("5.5") throws
	{"a > 5.0", []string{"a", "5.5"}, true},
	{"a > 3.1E10", []string{"a", "3.1415E10"}, true},
	{"a > 3.14", []string{"a", "3.1415"}, true},
	{"a > -1", []string{"a", "0"}, true},
	{"a > - -1", []string{"a", "0"}, false},
	{"-1 < a", []string{"a", "0"}, true},
	{"a > b", []string{"a", "20", "b", "10"}, true},
	{"a > b", []string{"a", "10", "b", "20"}, false},
	{"a > b", []string{"a", "10.5", "b", "1e1"}, true}, // both to double
	{"a > b", []string{"a", "x", "b", "1"}, false},     // throws
	{"a > 5.0", []string{"a", "NaN"}, true},            // Double.compare: NaN is largest
	{"a = 5.0", []string{"a", "NaN"}, false},
	{"a < b", []string{"a", "-0.0", "b", "0"}, true}, // Double.compare: -0.0 < 0.0
	{"a > -b", []string{"a", "1", "b", "1"}, false},  // -property is NULL
	{"a > 2147483648", []string{"a", "2147483649"}, true},
	{"a > 2147483648", []string{"a", "1.5"}, false}, // Long.valueOf throws
	{"a > 1.5", []string{"a", "Infinity"}, true},

	// BETWEEN and NOT BETWEEN.
	{"a between 2 and 10", []string{"a", "2"}, true},
	{"a between 2 and 10", []string{"a", "10"}, true},
	{"a between 2 and 10", []string{"a", "11"}, false},
	{"a between 2 and 10", []string{"a", "abc"}, false}, // throws
	{"a between 2 and 10", nil, false},
	{"a BETWEEN 0 AND 3 AND b = 'x'", []string{"a", "1", "b", "x"}, true},
	{"a not between 2 and 10", []string{"a", "1"}, true},
	{"a not between 2 and 10", []string{"a", "11"}, true},
	{"a not between 2 and 10", []string{"a", "5"}, false},
	{"a not between 2 and 10", nil, false},
	{"a between -1 and -3", []string{"a", "-2"}, false},  // negations are not checked as bounds
	{"a between 1 and 1.5", []string{"a", "1"}, true},    // >= 1 as Integer, <= 1.5 as Double
	{"a between 1 and 1.5", []string{"a", "1.2"}, false}, // Integer.valueOf("1.2") throws
	{"a between 1.0 and 1.5", []string{"a", "1.2"}, true},

	// IN and NOT IN: exact string equality, NULL when missing.
	{"a in ('3', '4', '5')", []string{"a", "4"}, true},
	{"a in ('3', '4', '5')", []string{"a", "8"}, false},
	{"a in ('3', '4', '5')", nil, false},
	{"a not in ('3', '4', '5')", []string{"a", "8"}, true},
	{"a not in ('3', '4', '5')", []string{"a", "3"}, false},
	{"a not in ('3', '4', '5')", nil, false},
	{"NOT (a not in ('3'))", nil, false},
	{"a in ('1','2','3','4','5','6','7','8','9','10')", []string{"a", "10"}, true},
	{"a in ('1','2','3','4','5','6','7','8','9','10')", []string{"a", "11"}, false},
	{"a in ('03')", []string{"a", "3"}, false},

	// CONTAINS, STARTSWITH, ENDSWITH: never NULL.
	{"v contains 'x'", []string{"v", "axb"}, true},
	{"v startswith 'ax'", []string{"v", "axb"}, true},
	{"v endswith 'xb'", []string{"v", "axb"}, true},
	{"v not contains 'x'", []string{"v", "axb"}, false},
	{"v not contains 'x'", []string{"v", "abb"}, true},
	{"v not startswith 'x'", []string{"v", "abb"}, true},
	{"v not endswith 'x'", []string{"v", "abb"}, true},
	{"v contains ''", []string{"v", "axb"}, false},
	{"v not contains ''", []string{"v", "axb"}, false}, // empty search: FALSE for NOT too
	{"v not contains 'x'", nil, false},                 // missing: FALSE, not NULL
	{"NOT (v contains 'x')", nil, true},                // so its negation is TRUE
	{"'axb' contains 'x'", nil, true},
	{"5 contains '5'", nil, false}, // not a string
	{"' ' startswith ' '", nil, true},
	{"(a > 1) contains ''", []string{"a", "x"}, false}, // empty search: operand not evaluated

	// IS NULL.
	{"a is null", nil, true},
	{"a is null", []string{"a", ""}, false},
	{"a is not null", []string{"a", ""}, true},
	{"a IS NOT NULL and a='hello'", []string{"a", "hello"}, true},
	{"a is null OR a='hello'", nil, true},
	{"a is null OR a='hello'", []string{"a", "abc"}, false},
	{"NULL IS NULL", nil, true},
	{"5 IS NULL", nil, false},
	{"(a > 1) is null", nil, true},

	// Three-valued AND, OR, NOT.
	{"a = 1 OR b = 1", []string{"b", "1"}, true},
	{"a = 1 AND b = 1", []string{"b", "1"}, false},
	{"NOT (a = 1 AND b = 1)", []string{"b", "1"}, false}, // NOT NULL
	{"NOT (a = 1 AND b = 1)", []string{"b", "2"}, true},  // NULL AND FALSE is FALSE
	{"NOT (a = 1 OR b = 1)", []string{"b", "2"}, false},  // NULL OR FALSE is NULL
	{"NOT NOT TRUE", nil, true},
	{"a=3 and b<>4 And c>5 AND d<=4", []string{"a", "3", "b", "5", "c", "6", "d", "1"}, true},
	{"a=3 and b<>4 And c>5 AND d<=4", []string{"a", "4", "b", "5", "c", "6", "d", "1"}, false},
	{"a=3 or b<>4 Or c>5 OR d<=4", []string{"a", "4", "b", "4", "c", "3", "d", "2"}, true},
	{"a=3 or b<>4 Or c>5 OR d<=4", []string{"a", "4", "b", "4", "c", "3", "d", "10"}, false},

	// A throw ends the evaluation (ExpressionMessageFilter catches it and
	// does not match), unless an earlier operand already decided.
	{"a > 1 OR b = 'x'", []string{"a", "abc", "b", "x"}, false},
	{"b = 'x' OR a > 1", []string{"a", "abc", "b", "x"}, true},
	{"a > 1 AND b = 'x'", []string{"a", "abc", "b", "y"}, false},
	{"b = 'x' AND a > 1", []string{"a", "abc", "b", "y"}, false},
	{"NOT (a > 1)", []string{"a", "abc"}, false},
	{"key is not null and key between 0 and 100", []string{"key", "con"}, false},

	// Precedence: NOT binds tighter than "=" (UnaryExpression.createNOT on
	// a boolean cast of the property).
	{"NOT a = 1", []string{"a", "2"}, false},
	{"NOT (a = 1)", []string{"a", "2"}, true},

	// Literals, comments and the rest of the input.
	{"TAGS='''''tag'''''", []string{"TAGS", "''tag''"}, true},
	{"a = 10L", []string{"a", "10"}, true},
	{"a = .5", []string{"a", "0.5"}, true},
	{"a = 5.", []string{"a", "5"}, true},
	{"A = 1", []string{"a", "1"}, false}, // property names are case-sensitive
	{"$a_1 = 1", []string{"$a_1", "1"}, true},
	{"a = /* c */ 1", []string{"a", "1"}, true},
	{"a = -- c\n 1", []string{"a", "1"}, true},
	{"a = --1", []string{"a", "1"}, true}, // no line end: two minus signs
	{"a = 1 b = 2", []string{"a", "1"}, true},
	{"a = 1 b = 2", []string{"a", "2", "b", "2"}, false},
	{"a = 1)", []string{"a", "1"}, true},
	// No hex or octal: "0x10" is "0" followed by the ignored identifier
	// "x10", and "007" is "0" followed by ignored numbers.
	{"a = 0x10", []string{"a", "0"}, true},
	{"a = 0x10", []string{"a", "16"}, false},
	{"a = 007", []string{"a", "0"}, true},
	{"a = 1.5L", []string{"a", "1.5"}, true},
	{"a = +'x'", []string{"a", "x"}, true},
	{"((((a = 1))))", []string{"a", "1"}, true},
	{"a = 'é'", []string{"a", "é"}, true},
}

func TestMatch(t *testing.T) {
	for _, c := range matchCases {
		e, err := Compile(c.expr)
		if err != nil {
			t.Errorf("Compile(%q): %v", c.expr, err)
			continue
		}
		if got := e.Match(props(c.props...)); got != c.want {
			t.Errorf("%q with %v: got %v, want %v", c.expr, c.props, got, c.want)
		}
		if e.String() != c.expr {
			t.Errorf("String() = %q, want %q", e.String(), c.expr)
		}
	}
}

func TestSyntaxErrors(t *testing.T) {
	cases := []struct{ expr, msg string }{
		{"", "end of input at offset 0"},
		{"   ", "end of input"},
		{"a and between 2 and 10", `unexpected "between" at offset 6`},
		{" a between 10 and 0", "above upper bound"},
		{"a between 1 and 'x'", "BETWEEN bounds 1 and 'x' cannot be compared at offset 10"},
		{"a between NULL and 1", "cannot be NULL"},
		{"a > 100000000000000000000000", "out of range"},
		{"a > 1e400", "out of range"},
		{"a > 0.0", "out of range"}, // ConstantExpression.createFloat: below Double.MIN_VALUE
		{"a > 1e-400", "out of range"},
		{"a = NULL", "IS NULL"},
		{"NULL = a", "IS NULL"},
		{"TRUE = 'x'", "cannot be compared"},
		{"TRUE = 1", "cannot be compared"},
		{"a > 'x'", "cannot be compared"},
		{"a > TRUE", "cannot be compared"},
		{"(a = 1) > 2", "cannot be compared"},
		{"'x' between 1 and 2", "cannot be compared"},
		{"a > 1 > 2", "cannot be compared"},
		{"'x' in ('x')", "IN needs a property"},
		{"a in (1)", "want a string literal"},
		{"a in ()", "want a string literal"},
		{"a in ('x'", "end of input"},
		{"a contains x", "want a string literal"},
		{"a contains 123", "want a string literal"},
		{"'axb' contains ", "end of input"},
		{"a = 1 AND 5", "not result in a boolean"},
		{"5", "not result in a boolean"},
		{"'x'", "not result in a boolean"},
		{"-a", "not result in a boolean"},
		{"NOT 5", "not result in a boolean"},
		{"a = 1 NOT x", `unexpected "x"`},
		{"a is x", `unexpected "x"`},
		{"a is not 1", `unexpected "1"`},
		{"a = 'x", "unterminated string"},
		{"a = 1 /* x", "unterminated comment"},
		{"a = 1 #", `unexpected character '#' at offset 6`},
		{"a != 1", `unexpected character '!'`},
		{"a = 1 OR", "end of input"},
		{"(a = 1", `want ")"`},
		{"é = 1", "unexpected character 'é'"},
		{"a = . ", "unexpected character '.'"},
		{"+", "end of input"},
	}
	for _, c := range cases {
		_, err := Compile(c.expr)
		if err == nil {
			t.Errorf("Compile(%q) succeeded", c.expr)
			continue
		}
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("Compile(%q): %v does not wrap ErrSyntax", c.expr, err)
		}
		if !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Compile(%q): %q does not mention %q", c.expr, err, c.msg)
		}
	}
}

func TestLimits(t *testing.T) {
	deep := strings.Repeat("(", 1<<20) + "a = 1" + strings.Repeat(")", 1<<20)
	if _, err := Compile(deep); !errors.Is(err, ErrTooLong) || !errors.Is(err, ErrSyntax) {
		t.Errorf("1 MiB of parentheses: %v", err)
	}
	for _, expr := range []string{
		strings.Repeat("(", MaxDepth+1) + "a = 1" + strings.Repeat(")", MaxDepth+1),
		strings.Repeat("NOT ", MaxDepth+1) + "a",
		"a " + strings.Repeat("= a ", MaxDepth+1),
		strings.Repeat("- ", MaxDepth+1) + "a > 1",
	} {
		if _, err := Compile(expr); !errors.Is(err, ErrTooDeep) || !errors.Is(err, ErrSyntax) {
			t.Errorf("Compile(%.20q...): %v, want ErrTooDeep", expr, err)
		}
	}
	if _, err := Compile(strings.Repeat("(", MaxLength)); !errors.Is(err, ErrTooDeep) {
		t.Errorf("%d parentheses: %v, want ErrTooDeep", MaxLength, err)
	}
	ok := strings.Repeat("(", MaxDepth-10) + "a = 1" + strings.Repeat(")", MaxDepth-10)
	if _, err := Compile(ok); err != nil {
		t.Errorf("%d parentheses: %v", MaxDepth-10, err)
	}
	// A long OR chain is flat, not deep.
	long := "a = '0'" + strings.Repeat(" OR a = '1'", 5000)
	e, err := Compile(long)
	if err != nil {
		t.Fatalf("long OR chain: %v", err)
	}
	if !e.Match(props("a", "1")) {
		t.Error("long OR chain does not match")
	}
}
