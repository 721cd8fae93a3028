package sqlfilter

import (
	"strings"
)

// kind is the static type of an expression, known when it is parsed.
type kind int

const (
	kAny kind = iota // a property or function: known only per message
	kBool
	kNumber
	kString
	kNull
)

func (k kind) String() string {
	return [...]string{"a value", "a predicate", "a number", "a string", "NULL"}[k]
}

type opcode int

const (
	opConst  opcode = iota
	opProp          // name, sys
	opPropFn        // property(expr): args[0] names a user property
	opNewID
	opAnd
	opOr
	opNot
	opCmp // text: = <> != < <= > >=
	opIsNull
	opIn
	opLike // args: value, pattern [, escape]
	opExists
	opArith // text: + - * / %
	opNeg
)

// expr is a node of a parsed filter.
type expr struct {
	op   opcode
	off  int    // byte offset in the source
	text string // operator
	val  any    // constant
	name string // property name: canonical lower-case for sys, as written for user
	sys  bool
	not  bool // NOT IN, NOT LIKE, IS NOT NULL
	args []*expr
	kind kind
}

type parser struct {
	src   string
	toks  []token
	pos   int
	depth int
}

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

func (p *parser) fail(t token, format string, args ...any) error {
	return errorAt(p.src, t.off, format, args...)
}

func (p *parser) expectOp(o string) (token, error) {
	t := p.next()
	if !t.op(o) {
		return t, p.fail(t, "expected %q, found %s", o, t)
	}
	return t, nil
}

func (p *parser) enter(t token) error {
	p.depth++
	if p.depth > maxDepth {
		return p.fail(t, "expression nested deeper than %d levels", maxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

// predicate requires e to be a predicate (a condition), as AND, OR, NOT
// and the whole filter need.
func (p *parser) predicate(e *expr, where string) error {
	if e.kind != kBool {
		return errorAt(p.src, e.off, "%s must be a condition (a comparison, IS NULL, IN, LIKE, EXISTS, TRUE or FALSE), found %s", where, e.kind)
	}
	return nil
}

func (p *parser) parseOr() (*expr, error) {
	left, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.peek().is("or") {
		t := p.next()
		right, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		if err := p.bothPredicates(left, right, "OR"); err != nil {
			return nil, err
		}
		left = &expr{op: opOr, off: t.off, args: []*expr{left, right}, kind: kBool}
	}
	return left, nil
}

func (p *parser) parseAnd() (*expr, error) {
	left, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	for p.peek().is("and") {
		t := p.next()
		right, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		if err := p.bothPredicates(left, right, "AND"); err != nil {
			return nil, err
		}
		left = &expr{op: opAnd, off: t.off, args: []*expr{left, right}, kind: kBool}
	}
	return left, nil
}

func (p *parser) bothPredicates(l, r *expr, op string) error {
	if err := p.predicate(l, "the left operand of "+op); err != nil {
		return err
	}
	return p.predicate(r, "the right operand of "+op)
}

func (p *parser) parseNot() (*expr, error) {
	if !p.peek().is("not") {
		return p.parsePredicate()
	}
	t := p.next()
	if err := p.enter(t); err != nil {
		return nil, err
	}
	defer p.leave()
	e, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	if err := p.predicate(e, "the operand of NOT"); err != nil {
		return nil, err
	}
	return &expr{op: opNot, off: t.off, args: []*expr{e}, kind: kBool}, nil
}

// parsePredicate parses EXISTS(...) or an expression with an optional
// comparison, IS [NOT] NULL, [NOT] IN or [NOT] LIKE after it.
func (p *parser) parsePredicate() (*expr, error) {
	if t := p.peek(); t.is("exists") {
		p.next()
		if _, err := p.expectOp("("); err != nil {
			return nil, err
		}
		prop, err := p.parseProperty(p.next())
		if err != nil {
			return nil, err
		}
		if _, err := p.expectOp(")"); err != nil {
			return nil, err
		}
		return &expr{op: opExists, off: t.off, args: []*expr{prop}, kind: kBool}, nil
	}
	left, err := p.parseAdditive()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	switch {
	case t.kind == tOp && isComparison(t.text):
		p.next()
		right, err := p.parseAdditive()
		if err != nil {
			return nil, err
		}
		if err := p.checkComparison(t, left, right); err != nil {
			return nil, err
		}
		return &expr{op: opCmp, off: t.off, text: t.text, args: []*expr{left, right}, kind: kBool}, nil
	case t.is("is"):
		return p.parseIsNull(left)
	case t.is("in"), t.is("like"):
		return p.parseInOrLike(left, false)
	case t.is("not"):
		p.next()
		if n := p.peek(); !n.is("in") && !n.is("like") {
			return nil, p.fail(n, "expected IN or LIKE after NOT, found %s", n)
		}
		return p.parseInOrLike(left, true)
	}
	return left, nil
}

func isComparison(op string) bool {
	switch op {
	case "=", "<>", "!=", "<", "<=", ">", ">=":
		return true
	}
	return false
}

// checkComparison refuses comparisons whose operand types can never
// compare (C# has no conversion between them).
func (p *parser) checkComparison(t token, l, r *expr) error {
	if l.kind == kAny || r.kind == kAny || l.kind == kNull || r.kind == kNull {
		return nil
	}
	if l.kind != r.kind {
		return p.fail(t, "cannot compare %s with %s", l.kind, r.kind)
	}
	if l.kind == kBool && t.text != "=" && t.text != "<>" && t.text != "!=" {
		return p.fail(t, "conditions compare only with =, <> or !=")
	}
	return nil
}

func (p *parser) parseIsNull(left *expr) (*expr, error) {
	t := p.next() // IS
	if left.op != opProp && left.op != opPropFn {
		return nil, errorAt(p.src, left.off, "IS NULL applies to a property, found %s", left.kind)
	}
	e := &expr{op: opIsNull, off: t.off, args: []*expr{left}, kind: kBool}
	if p.peek().is("not") {
		p.next()
		e.not = true
	}
	if n := p.next(); !n.is("null") {
		return nil, p.fail(n, "expected NULL after IS, found %s", n)
	}
	return e, nil
}

func (p *parser) parseInOrLike(left *expr, not bool) (*expr, error) {
	t := p.next()
	if left.kind == kBool {
		return nil, errorAt(p.src, left.off, "the operand of %s must be a value, found a condition", strings.ToUpper(t.text))
	}
	if t.is("like") {
		return p.parseLike(t, left, not)
	}
	if _, err := p.expectOp("("); err != nil {
		return nil, err
	}
	e := &expr{op: opIn, off: t.off, not: not, args: []*expr{left}, kind: kBool}
	for {
		item, err := p.parseAdditive()
		if err != nil {
			return nil, err
		}
		if err := p.checkComparison(token{off: item.off, text: "="}, left, item); err != nil {
			return nil, err
		}
		e.args = append(e.args, item)
		n := p.next()
		if n.op(")") {
			return e, nil
		}
		if !n.op(",") {
			return nil, p.fail(n, "expected ',' or ')' in the IN list, found %s", n)
		}
	}
}

func (p *parser) parseLike(t token, left *expr, not bool) (*expr, error) {
	if left.kind != kAny && left.kind != kString && left.kind != kNull {
		return nil, errorAt(p.src, left.off, "LIKE applies to a string, found %s", left.kind)
	}
	pat, err := p.parseAdditive()
	if err != nil {
		return nil, err
	}
	if pat.kind != kAny && pat.kind != kString && pat.kind != kNull {
		return nil, errorAt(p.src, pat.off, "the LIKE pattern must be a string, found %s", pat.kind)
	}
	e := &expr{op: opLike, off: t.off, not: not, args: []*expr{left, pat}, kind: kBool}
	if p.peek().is("escape") {
		p.next()
		esc, err := p.parseAdditive()
		if err != nil {
			return nil, err
		}
		if esc.op == opConst {
			if s, ok := esc.val.(string); !ok || len([]rune(s)) != 1 {
				return nil, errorAt(p.src, esc.off, "the ESCAPE character must be a string of one character")
			}
		} else if esc.kind != kAny && esc.kind != kString {
			return nil, errorAt(p.src, esc.off, "the ESCAPE character must be a string of one character, found %s", esc.kind)
		}
		e.args = append(e.args, esc)
	}
	return e, nil
}

func (p *parser) parseAdditive() (*expr, error) {
	left, err := p.parseMultiplicative()
	if err != nil {
		return nil, err
	}
	for t := p.peek(); t.op("+") || t.op("-"); t = p.peek() {
		p.next()
		right, err := p.parseMultiplicative()
		if err != nil {
			return nil, err
		}
		if left, err = p.arith(t, left, right); err != nil {
			return nil, err
		}
	}
	return left, nil
}

func (p *parser) parseMultiplicative() (*expr, error) {
	left, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for t := p.peek(); t.op("*") || t.op("/") || t.op("%"); t = p.peek() {
		p.next()
		right, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		if left, err = p.arith(t, left, right); err != nil {
			return nil, err
		}
	}
	return left, nil
}

// arith builds a binary arithmetic node: numbers, or + on strings
// (concatenation, as in C#).
func (p *parser) arith(t token, l, r *expr) (*expr, error) {
	for _, e := range []*expr{l, r} {
		if e.kind == kBool {
			return nil, errorAt(p.src, e.off, "arithmetic on a condition")
		}
		if e.kind == kString && t.text != "+" {
			return nil, p.fail(t, "operator %s does not apply to strings", t.text)
		}
	}
	k := kAny
	switch {
	case l.kind == kNull || r.kind == kNull:
		k = kNull
	case l.kind == kString || r.kind == kString:
		k = kString
	case l.kind == kNumber && r.kind == kNumber:
		k = kNumber
	}
	return &expr{op: opArith, off: t.off, text: t.text, args: []*expr{l, r}, kind: k}, nil
}

func (p *parser) parseUnary() (*expr, error) {
	t := p.peek()
	if !t.op("-") && !t.op("+") {
		return p.parsePrimary()
	}
	p.next()
	if err := p.enter(t); err != nil {
		return nil, err
	}
	defer p.leave()
	e, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	if e.kind != kAny && e.kind != kNumber && e.kind != kNull {
		return nil, errorAt(p.src, e.off, "unary %s applies to a number, found %s", t.text, e.kind)
	}
	if t.op("+") {
		return e, nil
	}
	if e.op == opConst {
		switch v := e.val.(type) {
		case int64:
			return &expr{op: opConst, off: t.off, val: -v, kind: kNumber}, nil
		case float64:
			return &expr{op: opConst, off: t.off, val: -v, kind: kNumber}, nil
		}
	}
	return &expr{op: opNeg, off: t.off, args: []*expr{e}, kind: e.kind}, nil
}

func (p *parser) parsePrimary() (*expr, error) {
	t := p.next()
	switch t.kind {
	case tString:
		return &expr{op: opConst, off: t.off, val: t.text, kind: kString}, nil
	case tInt:
		return &expr{op: opConst, off: t.off, val: t.i, kind: kNumber}, nil
	case tFloat:
		return &expr{op: opConst, off: t.off, val: t.f, kind: kNumber}, nil
	case tParam:
		return nil, p.fail(t, "parameters (@%s) are not supported: Config.json cannot set their values", t.text)
	case tDelimited:
		return p.parseProperty(t)
	case tOp:
		if t.op("(") {
			if err := p.enter(t); err != nil {
				return nil, err
			}
			defer p.leave()
			e, err := p.parseOr()
			if err != nil {
				return nil, err
			}
			if _, err := p.expectOp(")"); err != nil {
				return nil, err
			}
			return e, nil
		}
	case tIdent:
		switch strings.ToLower(t.text) {
		case "true":
			return &expr{op: opConst, off: t.off, val: true, kind: kBool}, nil
		case "false":
			return &expr{op: opConst, off: t.off, val: false, kind: kBool}, nil
		case "null":
			return &expr{op: opConst, off: t.off, val: nil, kind: kNull}, nil
		}
		if p.peek().op("(") {
			return p.parseFunction(t)
		}
		return p.parseProperty(t)
	}
	return nil, p.fail(t, "expected a value, found %s", t)
}

func (p *parser) parseFunction(t token) (*expr, error) {
	p.next() // (
	switch strings.ToLower(t.text) {
	case "newid":
		if _, err := p.expectOp(")"); err != nil {
			return nil, err
		}
		return &expr{op: opNewID, off: t.off, kind: kString}, nil
	case "property", "p":
		if err := p.enter(t); err != nil {
			return nil, err
		}
		defer p.leave()
		arg, err := p.parseAdditive()
		if err != nil {
			return nil, err
		}
		if arg.kind != kAny && arg.kind != kString {
			return nil, errorAt(p.src, arg.off, "%s() takes a property name (a string), found %s", t.text, arg.kind)
		}
		if _, err := p.expectOp(")"); err != nil {
			return nil, err
		}
		return &expr{op: opPropFn, off: t.off, args: []*expr{arg}, kind: kAny}, nil
	}
	return nil, p.fail(t, "unknown function %s(); supported: newid(), property(name), p(name)", t.text)
}

// parseProperty parses [scope.]name from its first token t.
func (p *parser) parseProperty(t token) (*expr, error) {
	if t.kind != tIdent && t.kind != tDelimited {
		return nil, p.fail(t, "expected a property name, found %s", t)
	}
	if t.kind == tIdent && keywords[strings.ToLower(t.text)] {
		return nil, p.fail(t, "%s is a reserved word; write [%s] for a property of that name", strings.ToUpper(t.text), t.text)
	}
	if !p.peek().op(".") {
		return &expr{op: opProp, off: t.off, name: t.text, kind: kAny}, nil
	}
	p.next()
	n := p.next()
	if n.kind != tIdent && n.kind != tDelimited {
		return nil, p.fail(n, "expected a property name after %s., found %s", t.text, n)
	}
	switch {
	case t.kind == tIdent && strings.EqualFold(t.text, "user"):
		return &expr{op: opProp, off: t.off, name: n.text, kind: kAny}, nil
	case t.kind == tIdent && strings.EqualFold(t.text, "sys"):
		name, ok := canonicalSystem(n.text)
		if !ok {
			return nil, p.fail(n, "unknown system property sys.%s; supported: %s", n.text, systemList())
		}
		return &expr{op: opProp, off: t.off, name: name, sys: true, kind: kAny}, nil
	}
	return nil, p.fail(t, "unknown scope %q: a property is name, user.name or sys.name", t.text)
}

func systemList() string {
	return "MessageId, CorrelationId, To, ReplyTo, Label (Subject), SessionId, ReplyToSessionId, ContentType, " +
		"TimeToLive, ScheduledEnqueueTimeUtc, PartitionKey, Size, DeliveryCount, SequenceNumber, EnqueuedTimeUtc, ExpiresAtUtc"
}
