// Package filter implements RocketMQ's SQL92 message filter: the language
// a consumer subscribes with (MessageSelector.bySql) and the broker
// evaluates against each message's properties. It follows RocketMQ's
// SelectorParser.jj grammar and the evaluation of its filter module's
// expression classes, including their quirks, so that a subscription
// selects on halfback exactly the messages it selects on RocketMQ.
//
// # Usage
//
//	e, err := filter.Compile("a BETWEEN 0 AND 3 AND b = 'x'")
//	if err != nil { // errors.Is(err, filter.ErrSyntax)
//		...
//	}
//	if e.Match(func(name string) (string, bool) { v, ok := props[name]; return v, ok }) {
//		// deliver
//	}
//
// The properties are all of the message's properties, user and system
// (TAGS, KEYS, ...), as RocketMQ's broker decodes them.
//
// # Language
//
// Keywords are case-insensitive: OR, AND, NOT; = and <> (no !=); >, >=, <,
// <=; BETWEEN x AND y and NOT BETWEEN; IN ('a', ...) and NOT IN; IS NULL
// and IS NOT NULL; CONTAINS, STARTSWITH, ENDSWITH and their NOT forms;
// TRUE, FALSE, NULL; parentheses; unary + and -. Literals: strings in
// single quotes (two quotes stand for one); decimal integers (no leading zeros; an L
// suffix is allowed and ignored); floating numbers (1.5, 5., .5, 1E10).
// There are no hexadecimal or octal literals: RocketMQ removed them.
// Identifiers are ASCII letters, digits, _ and $, not starting with a
// digit. "--" comments run to a line end, and /* */ comments are allowed.
//
// Precedence, loosest first: OR; AND; = <> IS; > >= < <= BETWEEN IN
// CONTAINS STARTSWITH ENDSWITH; unary NOT, - and +. NOT binds tighter than
// a comparison: "NOT a = 1" is "(NOT a) = 1", which never matches; write
// "NOT (a = 1)".
//
// # Types and NULL
//
// Every property is a string; a missing one is NULL. A comparison between
// a property and a number converts the property to the number's type
// (Integer for literals that fit 32 bits, Long above, Double for floating
// literals) with Java's rules. A property that does not convert — "abc",
// or "1.5" against the integer 1 — makes RocketMQ's evaluator throw, and
// a throw fails the whole expression, not just the comparison: "a > 1 OR
// b = 'x'" does not match a message with a = "abc", whatever b is (an OR
// whose left side is TRUE stops before reaching a later throw). Two
// properties ordered with > etc. are both converted to double; two
// properties compared with = are compared as strings. "a = TRUE" is
// TRUE for a property "true" in any case; "TRUE = a" throws.
//
// NULL follows three-valued logic through AND, OR and NOT, and a result of
// NULL is no match. Comparisons with NULL are NULL, with RocketMQ's
// exceptions: "x = y" is TRUE when both are NULL and FALSE (so "<>" is
// TRUE) when only the right side is; NOT IN on a missing property is NULL;
// CONTAINS, STARTSWITH and ENDSWITH and their NOT forms are FALSE on a
// missing property or with an empty search string.
//
// # Errors and limits
//
// Besides syntax, Compile refuses what RocketMQ refuses when it builds the
// expression: NULL with = or <>; a string or boolean with >, >=, <, <= or
// BETWEEN; BETWEEN with literal bounds out of order; IN after anything but
// a property; an operand that is not boolean where one is needed (a bare
// property is allowed and is TRUE only for a Boolean, so never); an
// integer literal beyond 64 bits; a floating literal that is zero or
// rounds to zero (RocketMQ compares it with Double.MIN_VALUE, the smallest
// positive double). Like RocketMQ's parser, Compile stops at the first
// token that cannot continue the expression and ignores the rest of the
// input: "a = 1 b = 2" is "a = 1".
//
// Compile refuses expressions longer than [MaxLength] bytes ([ErrTooLong])
// or nested deeper than [MaxDepth] ([ErrTooDeep]); RocketMQ has no limits.
package filter
