package sqlfilter

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLength is the longest expression accepted, in characters: the
// Service Bus quota for SQL filters and actions.
const MaxLength = 1024

// maxDepth bounds the nesting of an expression, so that no input can
// exhaust the stack.
const maxDepth = 64

// Error is a filter or action refused when it is parsed. Offset is the
// byte offset of the offending token in the expression; Line and Column
// (counted in characters) start at 1.
type Error struct {
	Offset, Line, Column int
	Msg                  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

func errorAt(src string, off int, format string, args ...any) *Error {
	if off > len(src) {
		off = len(src)
	}
	line, col := 1, 1
	for _, r := range src[:off] {
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return &Error{Offset: off, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)}
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tDelimited // [name] or "name": never a keyword
	tString
	tInt
	tFloat
	tParam // @name
	tOp    // = <> != < <= > >= + - * / % ( ) , . ;
)

type token struct {
	kind tokKind
	off  int
	text string // identifier, operator, or the unescaped string
	i    int64
	f    float64
}

// keywords may not be used as regular identifiers.
var keywords = map[string]bool{
	"and": true, "or": true, "not": true, "is": true, "null": true, "in": true, "like": true,
	"escape": true, "exists": true, "true": true, "false": true, "set": true, "remove": true,
}

func (t token) is(kw string) bool {
	return t.kind == tIdent && strings.EqualFold(t.text, kw)
}

func (t token) op(o string) bool { return t.kind == tOp && t.text == o }

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tString:
		return "'" + t.text + "'"
	case tDelimited:
		return "[" + t.text + "]"
	case tParam:
		return "@" + t.text
	}
	return t.text
}

// lex splits src into tokens.
func lex(src string) ([]token, error) {
	if n := utf8.RuneCountInString(src); n > MaxLength {
		return nil, errorAt(src, 0, "expression is %d characters long, limit %d", n, MaxLength)
	}
	if !utf8.ValidString(src) {
		return nil, errorAt(src, 0, "expression is not valid UTF-8")
	}
	var toks []token
	i := 0
	for {
		for i < len(src) {
			r, n := utf8.DecodeRuneInString(src[i:])
			if !unicode.IsSpace(r) {
				break
			}
			i += n
		}
		if i >= len(src) {
			return append(toks, token{kind: tEOF, off: i}), nil
		}
		t, next, err := lexOne(src, i)
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		i = next
	}
}

func lexOne(src string, i int) (token, int, error) {
	r, n := utf8.DecodeRuneInString(src[i:])
	switch {
	case unicode.IsLetter(r):
		j := i + n
		for j < len(src) {
			r2, n2 := utf8.DecodeRuneInString(src[j:])
			if r2 != '_' && !unicode.IsLetter(r2) && !unicode.IsDigit(r2) {
				break
			}
			j += n2
		}
		return token{kind: tIdent, off: i, text: src[i:j]}, j, nil
	case r >= '0' && r <= '9' || r == '.' && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '9':
		return lexNumber(src, i)
	case r == '\'':
		s, j, err := lexQuoted(src, i, '\'', '\'')
		return token{kind: tString, off: i, text: s}, j, err
	case r == '[':
		s, j, err := lexQuoted(src, i, '[', ']')
		if err == nil && s == "" {
			err = errorAt(src, i, "empty delimited identifier")
		}
		return token{kind: tDelimited, off: i, text: s}, j, err
	case r == '"':
		s, j, err := lexQuoted(src, i, '"', '"')
		if err == nil && s == "" {
			err = errorAt(src, i, "empty quoted identifier")
		}
		return token{kind: tDelimited, off: i, text: s}, j, err
	case r == '@':
		j := i + 1
		for j < len(src) {
			r2, n2 := utf8.DecodeRuneInString(src[j:])
			if r2 != '_' && !unicode.IsLetter(r2) && !unicode.IsDigit(r2) {
				break
			}
			j += n2
		}
		return token{kind: tParam, off: i, text: src[i+1 : j]}, j, nil
	}
	if strings.HasPrefix(src[i:], "--") || strings.HasPrefix(src[i:], "/*") {
		// Not in the grammar; refused rather than read as operators (a - -x)
		// that would silently change the filter.
		return token{}, 0, errorAt(src, i, "comments are not supported (write a - -1 with a space for a double minus)")
	}
	for _, op := range []string{"<>", "!=", "<=", ">=", "=", "<", ">", "+", "-", "*", "/", "%", "(", ")", ",", ".", ";"} {
		if strings.HasPrefix(src[i:], op) {
			return token{kind: tOp, off: i, text: op}, i + len(op), nil
		}
	}
	return token{}, 0, errorAt(src, i, "unexpected character %q", r)
}

// lexQuoted reads a string or identifier opened by open and closed by
// close, where close doubled stands for itself.
func lexQuoted(src string, i int, open, close byte) (string, int, error) {
	var b strings.Builder
	j := i + 1
	for j < len(src) {
		if src[j] == close {
			if j+1 < len(src) && src[j+1] == close {
				b.WriteByte(close)
				j += 2
				continue
			}
			return b.String(), j + 1, nil
		}
		b.WriteByte(src[j])
		j++
	}
	what := "string"
	if open != '\'' {
		what = "identifier"
	}
	return "", 0, errorAt(src, i, "unterminated %s: missing %c", what, close)
}

// lexNumber reads an integer (int64), a decimal (with a point) or an
// approximate number (with an exponent); the last two are float64.
func lexNumber(src string, i int) (token, int, error) {
	j := i
	digits := func() {
		for j < len(src) && src[j] >= '0' && src[j] <= '9' {
			j++
		}
	}
	digits()
	isFloat := false
	if j < len(src) && src[j] == '.' {
		isFloat = true
		j++
		digits()
	}
	if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
		k := j + 1
		if k < len(src) && (src[k] == '+' || src[k] == '-') {
			k++
		}
		if k < len(src) && src[k] >= '0' && src[k] <= '9' {
			isFloat = true
			j = k
			digits()
		}
	}
	if j < len(src) {
		if r, _ := utf8.DecodeRuneInString(src[j:]); unicode.IsLetter(r) || r == '_' {
			return token{}, 0, errorAt(src, i, "malformed number %q", src[i:j+1])
		}
	}
	text := src[i:j]
	if isFloat {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return token{}, 0, errorAt(src, i, "number %s out of range", text)
		}
		return token{kind: tFloat, off: i, text: text, f: f}, j, nil
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return token{}, 0, errorAt(src, i, "integer %s out of the range of a 64-bit integer", text)
	}
	return token{kind: tInt, off: i, text: text, i: v}, j, nil
}
