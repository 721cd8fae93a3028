package sqlfilter

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Filter is a parsed SQL filter. It is immutable and safe for concurrent
// use.
type Filter struct {
	src  string
	root *expr
}

// Parse parses a SQL filter expression. An expression outside the
// supported grammar (see the package documentation) is refused with an
// *Error giving its position.
func Parse(src string) (*Filter, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	if p.peek().kind == tEOF {
		return nil, p.fail(p.peek(), "empty filter expression")
	}
	root, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.fail(t, "unexpected %s after the end of the condition", t)
	}
	if err := p.predicate(root, "a filter"); err != nil {
		return nil, err
	}
	return &Filter{src: src, root: root}, nil
}

// String returns the expression as written.
func (f *Filter) String() string { return f.src }

// EvalError is a failure while evaluating a filter on one message, such
// as comparing a string property with a number: the real service's
// FilterException.
type EvalError struct {
	Offset int
	Msg    string
}

func (e *EvalError) Error() string { return fmt.Sprintf("offset %d: %s", e.Offset, e.Msg) }

func evalErr(e *expr, format string, args ...any) error {
	return &EvalError{Offset: e.off, Msg: fmt.Sprintf(format, args...)}
}

// Match evaluates the filter on m. An unknown result (a comparison with a
// missing property) does not match. A type mismatch that only the
// message's values reveal returns an *EvalError.
func (f *Filter) Match(m *Message) (bool, error) {
	v, err := eval(f.root, m)
	if err != nil {
		return false, err
	}
	b, _ := v.(bool)
	return b, nil
}

// eval computes e on m. nil is the unknown value (NULL).
func eval(e *expr, m *Message) (any, error) {
	switch e.op {
	case opConst:
		return e.val, nil
	case opProp:
		v, _ := lookup(m, e)
		return v, nil
	case opPropFn:
		name, err := eval(e.args[0], m)
		if err != nil || name == nil {
			return nil, err
		}
		s, ok := name.(string)
		if !ok {
			return nil, evalErr(e, "property() takes a string, got %s", typeName(name))
		}
		v, _ := m.User(s)
		return v, nil
	case opNewID:
		return newID(), nil
	case opAnd, opOr:
		return evalLogic(e, m)
	case opNot:
		v, err := evalBool(e.args[0], m)
		if err != nil || v == nil {
			return nil, err
		}
		return !v.(bool), nil
	case opCmp:
		return evalCompare(e, m)
	case opIsNull:
		v, _, err := propertyOf(e.args[0], m)
		if err != nil {
			return nil, err
		}
		return (v == nil) != e.not, nil
	case opExists:
		_, ok := lookup(m, e.args[0])
		return ok, nil
	case opIn:
		return evalIn(e, m)
	case opLike:
		return evalLike(e, m)
	case opArith:
		return evalArith(e, m)
	case opNeg:
		v, err := eval(e.args[0], m)
		if err != nil || v == nil {
			return nil, err
		}
		switch x := v.(type) {
		case int64:
			return -x, nil
		case float64:
			return -x, nil
		}
		return nil, evalErr(e, "unary - applies to a number, got %s", typeName(v))
	}
	return nil, evalErr(e, "unknown operation")
}

func lookup(m *Message, e *expr) (any, bool) {
	if e.sys {
		return m.System(e.name)
	}
	return m.User(e.name)
}

// propertyOf evaluates a property or property(name) node.
func propertyOf(e *expr, m *Message) (any, bool, error) {
	if e.op == opProp {
		v, ok := lookup(m, e)
		return v, ok, nil
	}
	v, err := eval(e, m)
	return v, v != nil, err
}

// evalBool evaluates a condition: true, false or nil (unknown).
func evalBool(e *expr, m *Message) (any, error) {
	v, err := eval(e, m)
	if err != nil || v == nil {
		return nil, err
	}
	if _, ok := v.(bool); !ok {
		return nil, evalErr(e, "expected a condition, got %s", typeName(v))
	}
	return v, nil
}

// evalLogic is AND and OR with SQL's three-valued logic.
func evalLogic(e *expr, m *Message) (any, error) {
	l, err := evalBool(e.args[0], m)
	if err != nil {
		return nil, err
	}
	decisive := e.op == opOr // true decides OR, false decides AND
	if l == decisive {
		return decisive, nil
	}
	r, err := evalBool(e.args[1], m)
	if err != nil {
		return nil, err
	}
	switch {
	case r == decisive:
		return decisive, nil
	case l == nil || r == nil:
		return nil, nil
	}
	return !decisive, nil
}

// operands evaluates a binary operator's two sides (either may be NULL).
func operands(e *expr, m *Message) (l, r any, err error) {
	if l, err = eval(e.args[0], m); err != nil {
		return nil, nil, err
	}
	if r, err = eval(e.args[1], m); err != nil {
		return nil, nil, err
	}
	return l, r, nil
}

func evalCompare(e *expr, m *Message) (any, error) {
	l, r, err := operands(e, m)
	if err != nil || l == nil || r == nil {
		return nil, err
	}
	c, err := compare(e, l, r, e.text == "=" || e.text == "<>" || e.text == "!=")
	if err != nil {
		return nil, err
	}
	if c == unordered { // NaN: only <> holds
		return e.text == "<>" || e.text == "!=", nil
	}
	switch e.text {
	case "=":
		return c == 0, nil
	case "<>", "!=":
		return c != 0, nil
	case "<":
		return c < 0, nil
	case "<=":
		return c <= 0, nil
	case ">":
		return c > 0, nil
	}
	return c >= 0, nil
}

// compare orders two known values: numbers by value (int64 widens to
// float64), strings ordinally (case-sensitive), booleans and other values
// for equality only. Values of different types do not compare.
func compare(e *expr, l, r any, equality bool) (int, error) {
	switch a := l.(type) {
	case int64:
		switch b := r.(type) {
		case int64:
			return cmpOrdered(a, b), nil
		case float64:
			return cmpFloat(float64(a), b), nil
		}
	case float64:
		switch b := r.(type) {
		case int64:
			return cmpFloat(a, float64(b)), nil
		case float64:
			return cmpFloat(a, b), nil
		}
	case string:
		if b, ok := r.(string); ok {
			return strings.Compare(a, b), nil
		}
	case time.Time:
		if b, ok := r.(time.Time); ok {
			return a.Compare(b), nil
		}
	case []byte:
		if b, ok := r.([]byte); ok && equality {
			return boolCmp(bytes.Equal(a, b)), nil
		}
	default:
		if equality && reflect.TypeOf(l) == reflect.TypeOf(r) && reflect.TypeOf(l).Comparable() {
			return boolCmp(l == r), nil
		}
	}
	if equality || reflect.TypeOf(l) != reflect.TypeOf(r) {
		return 0, evalErr(e, "cannot compare %s with %s", typeName(l), typeName(r))
	}
	return 0, evalErr(e, "%s values compare only with =, <> or !=", typeName(l))
}

func boolCmp(eq bool) int {
	if eq {
		return 0
	}
	return 1
}

func cmpOrdered[T int64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// unordered is cmpFloat's result for NaN, which equals nothing and has no
// order (as in C#).
const unordered = 2

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	case a == b:
		return 0
	}
	return unordered
}

func evalIn(e *expr, m *Message) (any, error) {
	l, err := eval(e.args[0], m)
	if err != nil || l == nil {
		return nil, err
	}
	unknown := false
	for _, item := range e.args[1:] {
		v, err := eval(item, m)
		if err != nil {
			return nil, err
		}
		if v == nil {
			unknown = true
			continue
		}
		c, err := compare(item, l, v, true)
		if err != nil {
			return nil, err
		}
		if c == 0 {
			return !e.not, nil
		}
	}
	if unknown {
		return nil, nil
	}
	return e.not, nil
}

func evalLike(e *expr, m *Message) (any, error) {
	vals := make([]string, len(e.args))
	for i, a := range e.args {
		v, err := eval(a, m)
		if err != nil || v == nil {
			return nil, err
		}
		s, ok := v.(string)
		if !ok {
			return nil, evalErr(a, "LIKE needs strings, got %s", typeName(v))
		}
		vals[i] = s
	}
	var esc rune = -1
	if len(vals) == 3 {
		r := []rune(vals[2])
		if len(r) != 1 {
			return nil, evalErr(e.args[2], "the ESCAPE character must be one character, got %q", vals[2])
		}
		esc = r[0]
	}
	ok, err := like([]rune(vals[0]), []rune(vals[1]), esc)
	if err != nil {
		return nil, evalErr(e.args[1], "%v", err)
	}
	return ok != e.not, nil
}

// like matches s against a LIKE pattern: % any run, _ one character, esc
// (or -1) makes the next character literal. Case-sensitive. A pattern
// that ends with the escape character is an error.
func like(s, pat []rune, esc rune) (bool, error) {
	for i := 0; i < len(pat); i++ {
		if pat[i] == esc {
			if i+1 >= len(pat) {
				return false, errors.New("the pattern ends with the ESCAPE character")
			}
			i++
		}
	}
	// Backtrack to the last % only: O(len(s)·len(pat)).
	si, pi := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		if pi < len(pat) {
			c := pat[pi]
			switch {
			case c == esc:
				if pat[pi+1] == s[si] {
					si++
					pi += 2
					continue
				}
			case c == '%':
				star, mark = pi, si
				pi++
				continue
			case c == '_' || c == s[si]:
				si++
				pi++
				continue
			}
		}
		if star < 0 {
			return false, nil
		}
		pi = star + 1
		mark++
		si = mark
	}
	for pi < len(pat) && pat[pi] == '%' && pat[pi] != esc {
		pi++
	}
	return pi == len(pat), nil
}

func evalArith(e *expr, m *Message) (any, error) {
	l, r, err := operands(e, m)
	if err != nil || l == nil || r == nil {
		return nil, err
	}
	ls, lok := l.(string)
	rs, rok := r.(string)
	if e.text == "+" && (lok || rok) {
		if !lok {
			ls = toString(l)
		}
		if !rok {
			rs = toString(r)
		}
		return ls + rs, nil
	}
	li, lInt := l.(int64)
	ri, rInt := r.(int64)
	if lInt && rInt {
		return intArith(e, li, ri)
	}
	lf, lok := toFloat(l)
	rf, rok := toFloat(r)
	if !lok || !rok {
		return nil, evalErr(e, "operator %s does not apply to %s and %s", e.text, typeName(l), typeName(r))
	}
	switch e.text {
	case "+":
		return lf + rf, nil
	case "-":
		return lf - rf, nil
	case "*":
		return lf * rf, nil
	case "/":
		return lf / rf, nil
	}
	return math.Mod(lf, rf), nil
}

func intArith(e *expr, a, b int64) (any, error) {
	switch e.text {
	case "+":
		return a + b, nil
	case "-":
		return a - b, nil
	case "*":
		return a * b, nil
	}
	if b == 0 {
		return nil, evalErr(e, "division by zero")
	}
	if a == math.MinInt64 && b == -1 {
		if e.text == "/" {
			return nil, evalErr(e, "integer overflow")
		}
		return int64(0), nil
	}
	if e.text == "/" {
		return a / b, nil
	}
	return a % b, nil
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

func toString(v any) string {
	switch x := v.(type) {
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'G', -1, 64)
	case bool:
		if x {
			return "True"
		}
		return "False"
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "NULL"
	case string:
		return "a string"
	case int64, float64:
		return "a number"
	case bool:
		return "a boolean"
	case time.Time:
		return "a timestamp"
	case []byte:
		return "binary"
	}
	return fmt.Sprintf("a %T", v)
}

func newID() string { return uuid.NewString() }
