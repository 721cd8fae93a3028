// Package odata parses and evaluates the subset of OData $filter expressions
// that the Azure Batch service accepts on list operations:
//
//	expr    = or
//	or      = and { "or" and }
//	and     = unary { "and" unary }
//	unary   = "not" unary | primary
//	primary = "(" expr ")" | "startswith(" prop "," string ")" | prop op literal
//	op      = eq | ne | gt | ge | lt | le
//	literal = 'string' (” escapes a quote) | integer | true | false | DateTime'RFC3339'
//
// Property names are case-sensitive and checked against a schema at parse
// time; string values compare case-insensitively, as in Batch.
package odata

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Kind is the type of a filterable property.
type Kind int

// Property kinds.
const (
	String Kind = iota + 1
	Int
	DateTime
	Bool
)

func (k Kind) String() string {
	switch k {
	case String:
		return "String"
	case Int:
		return "Int"
	case DateTime:
		return "DateTime"
	case Bool:
		return "Bool"
	}
	return "Unknown"
}

// Field describes one filterable property.
type Field struct {
	Kind Kind
	// EqOnly restricts the property to eq and ne (state, result).
	EqOnly bool
	// StartsWith allows startswith(prop,'x').
	StartsWith bool
}

// Schema maps property names (case-sensitive, "executionInfo/result") to fields.
type Schema map[string]Field

// Getter returns a property value: string, int64, time.Time or bool.
// ok=false means the property is absent on this entity (OData null).
type Getter func(prop string) (v any, ok bool)

// Expr is a parsed filter.
type Expr interface {
	Eval(get Getter) bool
}

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("invalid $filter")

// MaxLen bounds the filter text; deeper than MaxDepth nesting is refused.
const (
	MaxLen   = 8192
	MaxDepth = 64
)

// Parse parses src against schema.
func Parse(src string, schema Schema) (Expr, error) {
	if len(src) > MaxLen {
		return nil, fmt.Errorf("%w: longer than %d characters", ErrSyntax, MaxLen)
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, schema: schema}
	e, err := p.parseOr(0)
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, p.errorf("unexpected %q", p.toks[p.pos].text)
	}
	return e, nil
}

type tokKind int

const (
	tIdent tokKind = iota + 1
	tString
	tNumber
	tDateTime
	tLParen
	tRParen
	tComma
)

type token struct {
	kind tokKind
	text string // identifier, number text, decoded string
	pos  int
}

func lex(s string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, token{tLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tRParen, ")", i})
			i++
		case c == ',':
			toks = append(toks, token{tComma, ",", i})
			i++
		case c == '\'':
			str, n, err := lexString(s, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{tString, str, i})
			i = n
		case c == '-' || (c >= '0' && c <= '9'):
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			if s[i:j] == "-" {
				return nil, fmt.Errorf("%w: bad number at offset %d", ErrSyntax, i)
			}
			toks = append(toks, token{tNumber, s[i:j], i})
			i = j
		case isIdentStart(rune(c)):
			j := i
			for j < len(s) && isIdentPart(rune(s[j])) {
				j++
			}
			word := s[i:j]
			if strings.EqualFold(word, "datetime") && j < len(s) && s[j] == '\'' {
				str, n, err := lexString(s, j)
				if err != nil {
					return nil, err
				}
				toks = append(toks, token{tDateTime, str, i})
				i = n
				continue
			}
			toks = append(toks, token{tIdent, word, i})
			i = j
		default:
			return nil, fmt.Errorf("%w: unexpected character %q at offset %d", ErrSyntax, c, i)
		}
	}
	return toks, nil
}

func lexString(s string, start int) (string, int, error) {
	var b strings.Builder
	i := start + 1
	for i < len(s) {
		if s[i] == '\'' {
			if i+1 < len(s) && s[i+1] == '\'' {
				b.WriteByte('\'')
				i += 2
				continue
			}
			return b.String(), i + 1, nil
		}
		b.WriteByte(s[i])
		i++
	}
	return "", 0, fmt.Errorf("%w: unterminated string at offset %d", ErrSyntax, start)
}

func isIdentStart(r rune) bool { return r == '_' || r == '$' || unicode.IsLetter(r) && r < 128 }
func isIdentPart(r rune) bool {
	return isIdentStart(r) || (r >= '0' && r <= '9') || r == '/' || r == '.'
}

type parser struct {
	toks   []token
	pos    int
	schema Schema
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrSyntax}, args...)...)
}

func (p *parser) peek() *token {
	if p.pos < len(p.toks) {
		return &p.toks[p.pos]
	}
	return nil
}

func (p *parser) keyword(w string) bool {
	t := p.peek()
	if t != nil && t.kind == tIdent && strings.EqualFold(t.text, w) {
		p.pos++
		return true
	}
	return false
}

func (p *parser) parseOr(depth int) (Expr, error) {
	if depth > MaxDepth {
		return nil, p.errorf("nested deeper than %d", MaxDepth)
	}
	l, err := p.parseAnd(depth)
	if err != nil {
		return nil, err
	}
	for p.keyword("or") {
		r, err := p.parseAnd(depth)
		if err != nil {
			return nil, err
		}
		l = orExpr{l, r}
	}
	return l, nil
}

func (p *parser) parseAnd(depth int) (Expr, error) {
	l, err := p.parseUnary(depth)
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		r, err := p.parseUnary(depth)
		if err != nil {
			return nil, err
		}
		l = andExpr{l, r}
	}
	return l, nil
}

func (p *parser) parseUnary(depth int) (Expr, error) {
	if depth > MaxDepth {
		return nil, p.errorf("nested deeper than %d", MaxDepth)
	}
	if p.keyword("not") {
		e, err := p.parseUnary(depth + 1)
		if err != nil {
			return nil, err
		}
		return notExpr{e}, nil
	}
	return p.parsePrimary(depth)
}

func (p *parser) expect(k tokKind, what string) (*token, error) {
	t := p.peek()
	if t == nil {
		return nil, p.errorf("expected %s, found end of filter", what)
	}
	if t.kind != k {
		return nil, p.errorf("expected %s at offset %d, found %q", what, t.pos, t.text)
	}
	p.pos++
	return t, nil
}

// parsePrimary parses a parenthesised expression, startswith(prop,'x'),
// or a comparison.
func (p *parser) parsePrimary(depth int) (Expr, error) {
	t := p.peek()
	if t == nil {
		return nil, p.errorf("unexpected end of filter")
	}
	if t.kind == tLParen {
		p.pos++
		e, err := p.parseOr(depth + 1)
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tRParen, "')'"); err != nil {
			return nil, err
		}
		return e, nil
	}
	if t.kind != tIdent {
		return nil, p.errorf("expected a property name at offset %d, found %q", t.pos, t.text)
	}
	if strings.EqualFold(t.text, "startswith") && p.pos+1 < len(p.toks) && p.toks[p.pos+1].kind == tLParen {
		p.pos += 2
		return p.parseStartsWith()
	}
	p.pos++
	return p.parseCompare(t)
}

// parseStartsWith parses the arguments of startswith after its '(':
// a property that allows it, ',', a string literal, ')'.
func (p *parser) parseStartsWith() (Expr, error) {
	pt, err := p.expect(tIdent, "a property name")
	if err != nil {
		return nil, err
	}
	f, ok := p.schema[pt.text]
	if !ok {
		return nil, p.errorf("unknown property %q", pt.text)
	}
	if !f.StartsWith {
		return nil, p.errorf("startswith is not supported on %q", pt.text)
	}
	if _, err := p.expect(tComma, "','"); err != nil {
		return nil, err
	}
	st, err := p.expect(tString, "a string literal")
	if err != nil {
		return nil, err
	}
	if _, err := p.expect(tRParen, "')'"); err != nil {
		return nil, err
	}
	return startsWith{prop: pt.text, prefix: strings.ToLower(st.text)}, nil
}

// parseCompare parses the operator and value that follow property t
// (already consumed).
func (p *parser) parseCompare(t *token) (Expr, error) {
	f, ok := p.schema[t.text]
	if !ok {
		return nil, p.errorf("unknown property %q", t.text)
	}
	opt, err := p.expect(tIdent, "an operator")
	if err != nil {
		return nil, err
	}
	op := strings.ToLower(opt.text)
	switch op {
	case "eq", "ne":
	case "gt", "ge", "lt", "le":
		if f.EqOnly || f.Kind == Bool {
			return nil, p.errorf("operator %q is not supported on %q", op, t.text)
		}
	default:
		return nil, p.errorf("unknown operator %q", opt.text)
	}
	lit := p.peek()
	if lit == nil {
		return nil, p.errorf("expected a value after %q", opt.text)
	}
	p.pos++
	c := compare{prop: t.text, op: op, kind: f.Kind}
	if err := p.literal(&c, lit); err != nil {
		return nil, err
	}
	return c, nil
}

// literal sets c's value from lit, which must be of c's kind.
func (p *parser) literal(c *compare, lit *token) error {
	switch c.kind {
	case String:
		if lit.kind != tString {
			return p.errorf("%q needs a string value, found %q", c.prop, lit.text)
		}
		c.s = strings.ToLower(lit.text)
	case Int:
		if lit.kind != tNumber {
			return p.errorf("%q needs an integer value, found %q", c.prop, lit.text)
		}
		n, err := strconv.ParseInt(lit.text, 10, 64)
		if err != nil {
			return p.errorf("bad integer %q", lit.text)
		}
		c.n = n
	case DateTime:
		if lit.kind != tDateTime {
			return p.errorf("%q needs a DateTime'...' value, found %q", c.prop, lit.text)
		}
		tm, err := time.Parse(time.RFC3339Nano, lit.text)
		if err != nil {
			return p.errorf("bad DateTime %q", lit.text)
		}
		c.t = tm
	case Bool:
		if lit.kind != tIdent || (!strings.EqualFold(lit.text, "true") && !strings.EqualFold(lit.text, "false")) {
			return p.errorf("%q needs true or false, found %q", c.prop, lit.text)
		}
		c.b = strings.EqualFold(lit.text, "true")
	default:
		return p.errorf("property %q has no filter type", c.prop)
	}
	return nil
}

type orExpr struct{ l, r Expr }

func (e orExpr) Eval(g Getter) bool { return e.l.Eval(g) || e.r.Eval(g) }

type andExpr struct{ l, r Expr }

func (e andExpr) Eval(g Getter) bool { return e.l.Eval(g) && e.r.Eval(g) }

type notExpr struct{ e Expr }

func (e notExpr) Eval(g Getter) bool { return !e.e.Eval(g) }

type startsWith struct{ prop, prefix string }

func (e startsWith) Eval(g Getter) bool {
	v, ok := g(e.prop)
	if !ok {
		return false
	}
	s, ok := v.(string)
	return ok && strings.HasPrefix(strings.ToLower(s), e.prefix)
}

type compare struct {
	prop, op string
	kind     Kind
	s        string
	n        int64
	t        time.Time
	b        bool
}

func (e compare) Eval(g Getter) bool {
	v, ok := g(e.prop)
	if !ok {
		// OData null: only "ne" holds.
		return e.op == "ne"
	}
	var c int
	switch e.kind {
	case String:
		s, ok := v.(string)
		if !ok {
			return false
		}
		c = strings.Compare(strings.ToLower(s), e.s)
	case Int:
		n, ok := toInt(v)
		if !ok {
			return false
		}
		c = cmpInt(n, e.n)
	case DateTime:
		t, ok := v.(time.Time)
		if !ok {
			return false
		}
		c = t.Compare(e.t)
	case Bool:
		b, ok := v.(bool)
		if !ok {
			return false
		}
		if b == e.b {
			c = 0
		} else {
			c = 1
		}
	}
	switch e.op {
	case "eq":
		return c == 0
	case "ne":
		return c != 0
	case "gt":
		return c > 0
	case "ge":
		return c >= 0
	case "lt":
		return c < 0
	case "le":
		return c <= 0
	}
	return false
}

func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	}
	return 0, false
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
