package filter

import (
	"strings"
)

// kind is the Java type a value has in RocketMQ's evaluator.
type kind uint8

const (
	kNull   kind = iota // null: a missing property, NULL, or an unknown result
	kBool               // java.lang.Boolean
	kInt                // java.lang.Integer: decimal literals that fit 32 bits
	kLong               // java.lang.Long: larger decimal literals
	kDouble             // java.lang.Double: floating literals
	kString             // java.lang.String: string literals and every property
)

// value is one evaluated operand.
type value struct {
	k kind
	b bool
	i int64
	f float64
	s string
}

var (
	null      = value{}
	boolTrue  = value{k: kBool, b: true}
	boolFalse = value{k: kBool}
)

func boolValue(b bool) value {
	if b {
		return boolTrue
	}
	return boolFalse
}

// getter looks a property up.
type getter = func(name string) (string, bool)

// node is one compiled operator. eval returns ok == false where RocketMQ's
// evaluator throws (a failed number conversion, a Boolean cast to String):
// the exception ends the evaluation and the broker treats the message as
// not matching, whatever the rest of the expression says.
type node interface {
	eval(get getter) (v value, ok bool)
	// height is the depth of the tree under the node, itself included.
	height() int
}

// class is what RocketMQ's parser knows about an operand when it builds an
// operator: its checks (for example "only a property may precede IN") look
// at these Java classes.
type class uint8

const (
	clsOther    class = iota // an arithmetic negation
	clsConst                 // a string or number literal (ConstantExpression)
	clsBoolLit               // TRUE, FALSE or NULL (BooleanConstantExpression)
	clsBoolean               // an operator that yields a boolean (BooleanExpression)
	clsProperty              // a property name (PropertyExpression)
)

// constNode is a literal.
type constNode struct{ v value }

func (n *constNode) eval(getter) (value, bool) { return n.v, true }
func (n *constNode) height() int               { return 1 }

// propNode reads a property; a missing property is null.
type propNode struct{ name string }

func (n *propNode) eval(get getter) (value, bool) {
	s, ok := get(n.name)
	if !ok {
		return null, true
	}
	return value{k: kString, s: s}, true
}
func (n *propNode) height() int { return 1 }

// negNode is unary minus (UnaryExpression.createNegate): numbers are
// negated in their own type, anything else (a property's string, a
// boolean) gives null.
type negNode struct {
	x node
	h int
}

func (n *negNode) eval(get getter) (value, bool) {
	v, ok := n.x.eval(get)
	if !ok {
		return null, false
	}
	switch v.k {
	case kInt:
		return value{k: kInt, i: int64(-int32(v.i))}, true
	case kLong:
		return value{k: kLong, i: -v.i}, true
	case kDouble:
		return value{k: kDouble, f: -v.f}, true
	}
	return null, true
}
func (n *negNode) height() int { return n.h }

// asBool reads a boolean operand; anything but a Boolean or null is a
// ClassCastException in Java.
func asBool(v value, ok bool) (value, bool) {
	if !ok || (v.k != kBool && v.k != kNull) {
		return null, false
	}
	return v, true
}

// notNode is NOT: null stays null.
type notNode struct {
	x node
	h int
}

func (n *notNode) eval(get getter) (value, bool) {
	v, ok := asBool(n.x.eval(get))
	if !ok || v.k == kNull {
		return v, ok
	}
	return boolValue(!v.b), true
}
func (n *notNode) height() int { return n.h }

// castNode is a property used where a boolean is expected
// (UnaryExpression.createBooleanCast): null when missing, FALSE otherwise,
// since a property's value is a string, never a Boolean.
type castNode struct{ x node }

func (n *castNode) eval(get getter) (value, bool) {
	v, ok := n.x.eval(get)
	if !ok || v.k == kNull || v.k == kBool {
		return v, ok
	}
	return boolFalse, true
}
func (n *castNode) height() int { return 1 + n.x.height() }

// logicNode is a chain of AND or OR (LogicExpression), evaluated left to
// right and stopping at the first operand that decides the result, so an
// operand after it is never evaluated and cannot throw. Otherwise any null
// operand makes the result null.
type logicNode struct {
	or bool
	xs []node
	h  int
}

func (n *logicNode) eval(get getter) (value, bool) {
	sawNull := false
	for _, x := range n.xs {
		v, ok := asBool(x.eval(get))
		if !ok {
			return null, false
		}
		if v.k == kNull {
			sawNull = true
		} else if v.b == n.or {
			return v, true
		}
	}
	if sawNull {
		return null, true
	}
	return boolValue(!n.or), true
}
func (n *logicNode) height() int { return n.h }

// eqNode is "=" and IS NULL (ComparisonExpression.doCreateEqual).
type eqNode struct {
	l, r node
	h    int
}

func (n *eqNode) eval(get getter) (value, bool) {
	lv, ok := n.l.eval(get)
	if !ok {
		return null, false
	}
	rv, ok := n.r.eval(get)
	if !ok {
		return null, false
	}
	// Java: null on the left gives null, null on the right only FALSE, and
	// two nulls are equal.
	switch {
	case lv.k == kNull && rv.k == kNull:
		return boolTrue, true
	case lv.k == kNull:
		return null, true
	case rv.k == kNull:
		return boolFalse, true
	}
	c, ok := compare(lv, rv)
	if !ok {
		return null, false
	}
	return boolValue(c == 0), true
}
func (n *eqNode) height() int { return n.h }

// cmpOp is one of the ordering comparisons.
type cmpOp uint8

const (
	opGt cmpOp = iota
	opGe
	opLt
	opLe
)

// cmpNode is >, >=, < or <=. A null left operand gives null without the
// right one being evaluated. Two strings are both converted to double
// (Double.valueOf), which throws if either is not a number.
type cmpNode struct {
	op   cmpOp
	l, r node
	h    int
}

func (n *cmpNode) eval(get getter) (value, bool) {
	lv, ok := n.l.eval(get)
	if !ok || lv.k == kNull {
		return null, ok
	}
	rv, ok := n.r.eval(get)
	if !ok || rv.k == kNull {
		return null, ok
	}
	var c int
	if lv.k == kString && rv.k == kString {
		lf, lok := parseJavaDouble(lv.s)
		rf, rok := parseJavaDouble(rv.s)
		if !lok || !rok {
			return null, false
		}
		c = compareDouble(lf, rf)
	} else if c, ok = compare(lv, rv); !ok {
		return null, false
	}
	switch n.op {
	case opGt:
		return boolValue(c > 0), true
	case opGe:
		return boolValue(c >= 0), true
	case opLt:
		return boolValue(c < 0), true
	}
	return boolValue(c <= 0), true
}
func (n *cmpNode) height() int { return n.h }

// inNode is IN and NOT IN (UnaryExpression.createInExpression): exact
// string equality; null when the property is missing, for NOT IN too.
type inNode struct {
	x    node
	list []string
	set  map[string]struct{} // for long lists
	not  bool
}

func (n *inNode) eval(get getter) (value, bool) {
	v, ok := n.x.eval(get)
	if !ok || v.k != kString {
		return null, ok
	}
	found := false
	if n.set != nil {
		_, found = n.set[v.s]
	} else {
		for _, s := range n.list {
			if s == v.s {
				found = true
				break
			}
		}
	}
	return boolValue(found != n.not), true
}
func (n *inNode) height() int { return 1 + n.x.height() }

// strOp is one of the string-matching operators.
type strOp uint8

const (
	opContains strOp = iota
	opStartsWith
	opEndsWith
)

// strNode is CONTAINS, STARTSWITH, ENDSWITH and their NOT forms
// (ComparisonExpression.ContainsExpression and friends). They never give
// null: an empty search string, a missing property or a non-string
// operand are FALSE, for the NOT forms as well.
type strNode struct {
	op     strOp
	not    bool
	x      node
	search string
	h      int
}

func (n *strNode) eval(get getter) (value, bool) {
	if n.search == "" {
		return boolFalse, true
	}
	v, ok := n.x.eval(get)
	if !ok {
		return null, false
	}
	if v.k != kString {
		return boolFalse, true
	}
	var hit bool
	switch n.op {
	case opContains:
		hit = strings.Contains(v.s, n.search)
	case opStartsWith:
		hit = strings.HasPrefix(v.s, n.search)
	default:
		hit = strings.HasSuffix(v.s, n.search)
	}
	return boolValue(hit != n.not), true
}
func (n *strNode) height() int { return n.h }

// compare orders two non-null values as ComparisonExpression.__compare
// does with string conversion on (the only way RocketMQ's parser builds
// comparisons): operands of different types are converted — numbers up to
// the wider type, a string to the other operand's type — and a string
// that does not convert is an exception (ok == false). A Boolean on the
// left and a string on the right also throw (a ClassCastException in
// Java); other mismatches, such as a Boolean and a number, compare as
// "less", so they are never equal.
func compare(l, r value) (int, bool) {
	if l.k == r.k {
		return sameKind(l, r), true
	}
	switch l.k {
	case kBool:
		if r.k == kString {
			return 0, false
		}
		return -1, true
	case kInt, kLong:
		switch r.k {
		case kInt, kLong:
			return cmpInt(l.i, r.i), true
		case kDouble:
			return compareDouble(float64(l.i), r.f), true
		case kString:
			bits := 64
			if l.k == kInt {
				bits = 32
			}
			i, ok := parseJavaInt(r.s, bits)
			return cmpInt(l.i, i), ok
		}
		return -1, true
	case kDouble:
		switch r.k {
		case kInt, kLong:
			return compareDouble(l.f, float64(r.i)), true
		case kString:
			f, ok := parseJavaDouble(r.s)
			return compareDouble(l.f, f), ok
		}
		return -1, true
	case kString:
		switch r.k {
		case kBool:
			b := strings.EqualFold(l.s, "true")
			return sameKind(boolValue(b), r), true
		case kInt, kLong:
			bits := 64
			if r.k == kInt {
				bits = 32
			}
			i, ok := parseJavaInt(l.s, bits)
			return cmpInt(i, r.i), ok
		case kDouble:
			f, ok := parseJavaDouble(l.s)
			return compareDouble(f, r.f), ok
		}
	}
	return -1, true
}

// sameKind orders two values of one kind. Strings are only ever asked
// whether they are equal, so byte order is enough.
func sameKind(l, r value) int {
	switch l.k {
	case kBool:
		switch {
		case l.b == r.b:
			return 0
		case r.b:
			return -1
		}
		return 1
	case kInt, kLong:
		return cmpInt(l.i, r.i)
	case kDouble:
		return compareDouble(l.f, r.f)
	case kString:
		return strings.Compare(l.s, r.s)
	}
	return 0
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
