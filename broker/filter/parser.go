package filter

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// operand is a parsed sub-expression with what the grammar's checks need
// to know about it.
type operand struct {
	n   node
	cls class
	pos int    // byte offset where it starts
	txt string // the literal's text, for messages
}

// parser is a recursive-descent parser for the grammar of RocketMQ's
// SelectorParser.jj: one function per rule, the same precedence (OR, AND,
// equality, comparison, unary, primary) and the same checks at build time.
type parser struct {
	lx    lexer
	depth int // current nesting of unary operators and parentheses
}

// parse parses one expression and returns it as a boolean node.
// Like RocketMQ's JmsSelector rule, it does not ask for the end of the
// input: it stops at the first token that cannot continue the expression
// and ignores the rest of the text (that token is still scanned, so it must
// be a valid token).
func (p *parser) parse() (node, error) {
	x, err := p.orExpr()
	if err != nil {
		return nil, err
	}
	if _, err := p.lx.peek(0); err != nil {
		return nil, err
	}
	return p.boolean(x)
}

// boolean is the grammar's asBooleanExpression: an operator that yields a
// boolean is kept, a bare property is cast, anything else is refused.
func (p *parser) boolean(x operand) (node, error) {
	switch x.cls {
	case clsBoolean, clsBoolLit:
		return x.n, nil
	case clsProperty:
		return &castNode{x: x.n}, nil
	}
	return nil, syntaxErr(x.pos, "expression will not result in a boolean value")
}

func (p *parser) peekKind() (tokKind, error) {
	t, err := p.lx.peek(0)
	return t.kind, err
}

// expect consumes a token of kind k.
func (p *parser) expect(k tokKind, what string) (token, error) {
	t, err := p.lx.next()
	if err != nil {
		return t, err
	}
	if t.kind != k {
		return t, unexpected(t, what)
	}
	return t, nil
}

func (p *parser) orExpr() (operand, error) {
	return p.logic(tOr, p.andExpr)
}

func (p *parser) andExpr() (operand, error) {
	return p.logic(tAnd, p.equalityExpr)
}

// logic parses operand (op operand)*, gathering a chain into one node.
func (p *parser) logic(op tokKind, sub func() (operand, error)) (operand, error) {
	left, err := sub()
	if err != nil {
		return left, err
	}
	var chain *logicNode
	for {
		k, err := p.peekKind()
		if err != nil {
			return left, err
		}
		if k != op {
			return left, nil
		}
		_, _ = p.lx.next()
		right, err := sub()
		if err != nil {
			return left, err
		}
		if chain == nil {
			l, err := p.boolean(left)
			if err != nil {
				return left, err
			}
			chain = &logicNode{or: op == tOr, xs: []node{l}, h: 1 + l.height()}
			left = operand{n: chain, cls: clsBoolean, pos: left.pos}
		}
		r, err := p.boolean(right)
		if err != nil {
			return left, err
		}
		chain.xs = append(chain.xs, r)
		chain.h = max(chain.h, 1+r.height())
		if err := p.checkHeight(chain, left.pos); err != nil {
			return left, err
		}
	}
}

func (p *parser) equalityExpr() (operand, error) {
	left, err := p.comparisonExpr()
	if err != nil {
		return left, err
	}
	for {
		t, err := p.lx.peek(0)
		if err != nil {
			return left, err
		}
		var n node
		switch t.kind {
		case tEq, tNe:
			_, _ = p.lx.next()
			right, err := p.comparisonExpr()
			if err != nil {
				return left, err
			}
			if err := checkEqualOperands(left, right); err != nil {
				return left, err
			}
			n = newEq(left.n, right.n)
			if t.kind == tNe {
				n = &notNode{x: n, h: 1 + n.height()}
			}
		case tIs:
			_, _ = p.lx.next()
			not := false
			nt, err := p.lx.next()
			if err != nil {
				return left, err
			}
			if nt.kind == tNot {
				not = true
				if nt, err = p.lx.next(); err != nil {
					return left, err
				}
			}
			if nt.kind != tNull {
				return left, unexpected(nt, "NULL")
			}
			n = newEq(left.n, &constNode{v: null})
			if not {
				n = &notNode{x: n, h: 1 + n.height()}
			}
		default:
			return left, nil
		}
		left = operand{n: n, cls: clsBoolean, pos: left.pos}
		if err := p.checkHeight(n, left.pos); err != nil {
			return left, err
		}
	}
}

func newEq(l, r node) node {
	return &eqNode{l: l, r: r, h: 1 + max(l.height(), r.height())}
}

// checkEqualOperands is ComparisonExpression.createEqual's check: NULL may
// not be compared with "=" (IS NULL is the way), and TRUE or FALSE on the
// left may only be compared with a boolean when both sides are literals.
func checkEqualOperands(l, r operand) error {
	for _, x := range []operand{l, r} {
		if x.cls == clsBoolLit && x.n.(*constNode).v.k == kNull {
			return syntaxErr(x.pos, "NULL cannot be compared with = or <>, use IS NULL")
		}
	}
	if l.cls == clsBoolLit && r.cls == clsConst {
		return syntaxErr(l.pos, fmt.Sprintf("%s cannot be compared with %s", l.txt, r.txt))
	}
	return nil
}

// checkOrdered is ComparisonExpression.checkLessThanOperand: only number
// literals, properties and negations may be ordered.
func checkOrdered(x operand) error {
	switch x.cls {
	case clsConst:
		if k := x.n.(*constNode).v.k; k == kInt || k == kLong || k == kDouble {
			return nil
		}
	case clsProperty, clsOther:
		return nil
	}
	return syntaxErr(x.pos, "value cannot be compared with >, >=, <, <= or BETWEEN")
}

func (p *parser) comparisonExpr() (operand, error) {
	left, err := p.unaryExpr()
	if err != nil {
		return left, err
	}
	for {
		t, err := p.lx.peek(0)
		if err != nil {
			return left, err
		}
		var n node
		switch t.kind {
		case tGt, tGe, tLt, tLe:
			_, _ = p.lx.next()
			right, err := p.unaryExpr()
			if err != nil {
				return left, err
			}
			if n, err = newCmp(t.kind, left, right); err != nil {
				return left, err
			}
		case tContains, tStartsWith, tEndsWith, tBetween, tIn:
			_, _ = p.lx.next()
			if n, err = p.suffixOp(t.kind, false, left); err != nil {
				return left, err
			}
		case tNot:
			t2, err := p.lx.peek(1)
			if err != nil {
				return left, err
			}
			switch t2.kind {
			case tContains, tStartsWith, tEndsWith, tBetween, tIn:
			default:
				return left, unexpected(t2, "CONTAINS, STARTSWITH, ENDSWITH, BETWEEN or IN after NOT")
			}
			_, _ = p.lx.next()
			_, _ = p.lx.next()
			if n, err = p.suffixOp(t2.kind, true, left); err != nil {
				return left, err
			}
		default:
			return left, nil
		}
		left = operand{n: n, cls: clsBoolean, pos: left.pos}
		if err := p.checkHeight(n, left.pos); err != nil {
			return left, err
		}
	}
}

var cmpOps = map[tokKind]cmpOp{tGt: opGt, tGe: opGe, tLt: opLt, tLe: opLe}

func newCmp(k tokKind, l, r operand) (node, error) {
	if err := checkOrdered(l); err != nil {
		return nil, err
	}
	if err := checkOrdered(r); err != nil {
		return nil, err
	}
	return &cmpNode{op: cmpOps[k], l: l.n, r: r.n, h: 1 + max(l.n.height(), r.n.height())}, nil
}

// suffixOp parses what follows CONTAINS, STARTSWITH, ENDSWITH, BETWEEN or
// IN (or their NOT forms); the keyword is already consumed.
func (p *parser) suffixOp(k tokKind, not bool, left operand) (node, error) {
	switch k {
	case tBetween:
		return p.between(not, left)
	case tIn:
		return p.in(not, left)
	}
	t, err := p.expect(tString, "a string literal")
	if err != nil {
		return nil, err
	}
	op := map[tokKind]strOp{tContains: opContains, tStartsWith: opStartsWith, tEndsWith: opEndsWith}[k]
	return &strNode{op: op, not: not, x: left.n, search: unquote(t.text), h: 1 + left.n.height()}, nil
}

// between parses "low AND high". BETWEEN is ">= low AND <= high"; NOT
// BETWEEN is "< low OR > high". With two literal bounds, BETWEEN (not NOT
// BETWEEN) refuses low > high, as ComparisonExpression.createBetween does.
func (p *parser) between(not bool, value operand) (node, error) {
	low, err := p.unaryExpr()
	if err != nil {
		return nil, err
	}
	if _, err := p.expect(tAnd, "AND"); err != nil {
		return nil, err
	}
	high, err := p.unaryExpr()
	if err != nil {
		return nil, err
	}
	ops := [2]tokKind{tGe, tLe}
	if not {
		ops = [2]tokKind{tLt, tGt}
	} else if err := checkBounds(low, high); err != nil {
		return nil, err
	}
	a, err := newCmp(ops[0], value, low)
	if err != nil {
		return nil, err
	}
	b, err := newCmp(ops[1], value, high)
	if err != nil {
		return nil, err
	}
	return &logicNode{or: not, xs: []node{a, b}, h: 1 + max(a.height(), b.height())}, nil
}

func checkBounds(low, high operand) error {
	if low.cls != clsConst && low.cls != clsBoolLit || high.cls != clsConst && high.cls != clsBoolLit {
		return nil
	}
	lv, hv := low.n.(*constNode).v, high.n.(*constNode).v
	if lv.k == kNull || hv.k == kNull {
		return syntaxErr(low.pos, "BETWEEN bounds cannot be NULL")
	}
	c, ok := compare(hv, lv)
	if !ok {
		return syntaxErr(low.pos, fmt.Sprintf("BETWEEN bounds %s and %s cannot be compared", low.txt, high.txt))
	}
	if c < 0 {
		return syntaxErr(low.pos, fmt.Sprintf("BETWEEN lower bound %s is above upper bound %s", low.txt, high.txt))
	}
	return nil
}

// in parses "( 'a', 'b', ... )"; only string literals may be listed and
// only a property may be tested.
func (p *parser) in(not bool, left operand) (node, error) {
	if left.cls != clsProperty {
		return nil, syntaxErr(left.pos, "IN needs a property on its left")
	}
	if _, err := p.expect(tLParen, `"("`); err != nil {
		return nil, err
	}
	n := &inNode{x: left.n, not: not}
	for {
		t, err := p.expect(tString, "a string literal")
		if err != nil {
			return nil, err
		}
		n.list = append(n.list, unquote(t.text))
		if t, err = p.lx.next(); err != nil {
			return nil, err
		}
		if t.kind == tRParen {
			break
		}
		if t.kind != tComma {
			return nil, unexpected(t, `"," or ")"`)
		}
	}
	if len(n.list) > 8 {
		n.set = make(map[string]struct{}, len(n.list))
		for _, s := range n.list {
			n.set[s] = struct{}{}
		}
	}
	return n, nil
}

func (p *parser) unaryExpr() (operand, error) {
	t, err := p.lx.peek(0)
	if err != nil {
		return operand{}, err
	}
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > MaxDepth {
		return operand{}, tooDeep(t.pos)
	}
	switch t.kind {
	case tPlus:
		_, _ = p.lx.next()
		x, err := p.unaryExpr()
		x.pos = t.pos
		return x, err
	case tMinus:
		_, _ = p.lx.next()
		x, err := p.unaryExpr()
		if err != nil {
			return x, err
		}
		n := &negNode{x: x.n, h: 1 + x.n.height()}
		return operand{n: n, cls: clsOther, pos: t.pos}, p.checkHeight(n, t.pos)
	case tNot:
		_, _ = p.lx.next()
		x, err := p.unaryExpr()
		if err != nil {
			return x, err
		}
		b, err := p.boolean(x)
		if err != nil {
			return x, err
		}
		n := &notNode{x: b, h: 1 + b.height()}
		return operand{n: n, cls: clsBoolean, pos: t.pos}, p.checkHeight(n, t.pos)
	}
	return p.primaryExpr()
}

func (p *parser) primaryExpr() (operand, error) {
	t, err := p.lx.next()
	if err != nil {
		return operand{}, err
	}
	o := operand{pos: t.pos, txt: t.text, cls: clsConst}
	switch t.kind {
	case tString:
		o.n = &constNode{v: value{k: kString, s: unquote(t.text)}}
	case tDecimal:
		v, err := decimalLiteral(t)
		if err != nil {
			return o, err
		}
		o.n = &constNode{v: v}
	case tFloat:
		v, err := floatLiteral(t)
		if err != nil {
			return o, err
		}
		o.n = &constNode{v: v}
	case tTrue, tFalse, tNull:
		o.cls = clsBoolLit
		o.txt = strings.ToUpper(t.text)
		o.n = &constNode{v: map[tokKind]value{tTrue: boolTrue, tFalse: boolFalse, tNull: null}[t.kind]}
	case tIdent:
		o.cls = clsProperty
		o.n = &propNode{name: t.text}
	case tLParen:
		x, err := p.orExpr()
		if err != nil {
			return x, err
		}
		if _, err := p.expect(tRParen, `")"`); err != nil {
			return x, err
		}
		return x, nil
	default:
		return o, unexpected(t, "a literal, a property or \"(\"")
	}
	return o, nil
}

// decimalLiteral is ConstantExpression.createFromDecimal: an optional L is
// dropped, the value must fit 64 bits, and it is an Integer when it fits 32.
func decimalLiteral(t token) (value, error) {
	text := strings.TrimRight(t.text, "lL")
	i, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return null, syntaxErr(t.pos, fmt.Sprintf("integer literal %s out of range", t.text))
	}
	if math.MinInt32 <= i && i <= math.MaxInt32 {
		return value{k: kInt, i: i}, nil
	}
	return value{k: kLong, i: i}, nil
}

// floatLiteral is ConstantExpression.createFloat. Its range check refuses
// anything above Double.MAX_VALUE and — because Double.MIN_VALUE is the
// smallest positive double — anything below it, which includes 0.0: a
// literal that is or rounds to zero does not compile in RocketMQ.
func floatLiteral(t token) (value, error) {
	f, err := strconv.ParseFloat(t.text, 64)
	if err != nil && !math.IsInf(f, 0) {
		return null, syntaxErr(t.pos, fmt.Sprintf("bad floating literal %s", t.text))
	}
	if math.IsInf(f, 0) || f < math.SmallestNonzeroFloat64 {
		return null, syntaxErr(t.pos, fmt.Sprintf("floating literal %s out of range (must be between Double.MIN_VALUE and Double.MAX_VALUE)", t.text))
	}
	return value{k: kDouble, f: f}, nil
}

func (p *parser) checkHeight(n node, pos int) error {
	if n.height() > MaxDepth {
		return tooDeep(pos)
	}
	return nil
}
