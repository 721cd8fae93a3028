package sqlfilter

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// msg is the message most cases evaluate on.
func msg() *Message {
	m := &Message{}
	m.SetSystem("Label", "order.created")
	m.SetSystem(SysMessageID, "m-1")
	m.SetSystem(SysContentType, "application/json")
	m.SetSystem(SysSize, 120)
	m.SetUser("color", "red")
	m.SetUser("Quantity", int32(10))
	m.SetUser("price", 2.5)
	m.SetUser("vip", true)
	m.SetUser("nothing", nil)
	m.SetUser("when", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC))
	m.SetUser("pct", "100%")
	m.SetUser("Store", "Store5")
	return m
}

func TestMatch(t *testing.T) {
	tests := []struct {
		expr string
		want bool
	}{
		// comparisons, user scope by default, names ignore case
		{"color = 'red'", true},
		{"COLOR = 'red'", true},
		{"user.color = 'red'", true},
		{"[color] = 'red'", true},
		{`"color" = 'red'`, true},
		{"color = 'RED'", false}, // strings are case-sensitive
		{"color <> 'blue' AND color != 'green'", true},
		{"quantity = 10", true},
		{"quantity = 10.0", true},
		{"quantity > 9 AND quantity >= 10 AND quantity < 11 AND quantity <= 10", true},
		{"price > 2", true},
		{"price = 2.5", true},
		{"price = 25E-1", true},
		{"vip = TRUE", true},
		{"vip = false", false},
		{"vip <> FALSE", true},
		{"color > 'blue'", true}, // ordinal string order
		{"when > when", false},
		// arithmetic
		{"quantity * 2 + 1 = 21", true},
		{"quantity / 4 = 2", true}, // integer division
		{"quantity % 4 = 2", true},
		{"quantity / 4.0 = 2.5", true},
		{"-quantity = -10", true},
		{"quantity - -1 = 11", true},
		{"+quantity = 10", true},
		{"price * 2 = 5", true},
		{"(quantity + 5) * 2 = 30", true},
		{"color + '!' = 'red!'", true},
		{"'n' + quantity = 'n10'", true},
		// system properties
		{"sys.Label = 'order.created'", true},
		{"sys.subject = 'order.created'", true},
		{"SYS.LABEL LIKE 'order.%'", true},
		{"sys.MessageId = 'm-1'", true},
		{"sys.ContentType = 'application/json'", true},
		{"sys.Size > 100", true},
		{"sys.To IS NULL", true},
		{"sys.To = 'x'", false},
		// IS NULL, EXISTS
		{"missing IS NULL", true},
		{"nothing IS NULL", true},
		{"color IS NOT NULL", true},
		{"missing IS NOT NULL", false},
		{"EXISTS(color)", true},
		{"EXISTS(nothing)", true},
		{"EXISTS(missing)", false},
		{"NOT EXISTS(missing)", true},
		{"EXISTS(sys.Label)", true},
		{"EXISTS(sys.To)", false},
		// IN
		{"color IN ('blue', 'red')", true},
		{"color NOT IN ('blue', 'red')", false},
		{"Store IN('Store1', 'Store2', 'Store5')", true},
		{"quantity IN (1, 10.0)", true},
		{"missing IN ('a')", false},
		{"missing NOT IN ('a')", false},
		{"color IN ('blue', missing)", false},     // unknown
		{"color NOT IN ('blue', missing)", false}, // unknown
		{"color IN ('red', missing)", true},
		// LIKE
		{"color LIKE 'r%'", true},
		{"color LIKE '_ed'", true},
		{"color LIKE 'R%'", false},
		{"color LIKE '%'", true},
		{"color LIKE 're'", false},
		{"color NOT LIKE 'b%'", true},
		{"pct LIKE '100\\%' ESCAPE '\\'", true},
		{"pct LIKE '1\\%' ESCAPE '\\'", false},
		{"pct LIKE '%!%' ESCAPE '!'", true},
		{"color LIKE 'r%d%'", true},
		{"color LIKE '%e%d'", true},
		{"missing LIKE '%'", false},
		{"missing NOT LIKE '%'", false},
		// three-valued logic
		{"missing = 1 OR color = 'red'", true},
		{"missing = 1 AND color = 'red'", false},
		{"NOT (missing = 1)", false},
		{"NOT (missing = 1) OR TRUE", true},
		{"missing = 1 AND FALSE", false},
		{"NOT (missing = 1 AND FALSE)", true},
		{"NOT (missing = 1 OR FALSE)", false},
		{"missing + 1 = 2", false},
		{"-missing = 1", false},
		{"missing = NULL", false},
		{"NOT (missing = NULL)", false},
		// precedence: NOT > AND > OR
		{"color = 'blue' AND vip = TRUE OR quantity = 10", true},
		{"color = 'blue' AND (vip = TRUE OR quantity = 10)", false},
		{"NOT color = 'blue' AND quantity = 10", true},
		{"TRUE", true},
		{"FALSE", false},
		{"1=1", true},
		{"1=0", false},
		// functions
		{"property('color') = 'red'", true},
		{"p('col' + 'or') = 'red'", true},
		{"newid() <> newid()", true},
		// whitespace and comments-free multi-line input
		{"color = 'red'\n  AND\tquantity = 10", true},
		{"'it''s' = 'it''s'", true},
	}
	m := msg()
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			f, err := Parse(tt.expr)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			got, err := f.Match(m)
			if err != nil {
				t.Fatalf("match: %v", err)
			}
			if got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMatchEvalErrors(t *testing.T) {
	tests := []string{
		"color = 1",        // string vs number: no C# conversion
		"vip > FALSE",      // booleans have no order
		"quantity / 0 = 1", // division by zero
		"color LIKE 'a\\' ESCAPE '\\'",
		"vip LIKE 'a%'",
		"vip + 1 = 2",
		"-color = 1",
		"color IN (1, 2)",
		"property(quantity) = 1",
	}
	for _, expr := range tests {
		t.Run(expr, func(t *testing.T) {
			f, err := Parse(expr)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			_, err = f.Match(msg())
			var ee *EvalError
			if !errors.As(err, &ee) {
				t.Fatalf("got %v, want an *EvalError", err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		expr      string
		line, col int
		msg       string
	}{
		{"", 1, 1, "empty filter"},
		{"color = ", 1, 9, "expected a value, found end of expression"},
		{"color = 'red", 1, 9, "unterminated string"},
		{"color == 'red'", 1, 8, "expected a value"},
		{"color", 1, 1, "must be a condition"},
		{"color = 'a' AND quantity", 1, 17, "right operand of AND must be a condition"},
		{"NOT 1", 1, 5, "operand of NOT must be a condition"},
		{"1 + 2", 1, 3, "must be a condition"},
		{"sys.Nope = 1", 1, 5, "unknown system property sys.Nope"},
		{"foo.bar = 1", 1, 1, `unknown scope "foo"`},
		{"color = @p", 1, 9, "parameters (@p) are not supported"},
		{"upper(color) = 'RED'", 1, 1, "unknown function upper()"},
		{"color = 'a'\nAND x ~ 1", 2, 7, "unexpected character '~'"},
		{"color = 'a' color", 1, 13, "unexpected color after the end"},
		{"'a' = 1", 1, 5, "cannot compare a string with a number"},
		{"TRUE > FALSE", 1, 6, "conditions compare only with"},
		{"'a' - 'b' = ''", 1, 5, "operator - does not apply to strings"},
		{"(a = 1) + 1 = 2", 1, 4, "arithmetic on a condition"},
		{"1 IS NULL", 1, 1, "IS NULL applies to a property"},
		{"a IS 1", 1, 6, "expected NULL after IS"},
		{"a NOT BETWEEN 1", 1, 7, "expected IN or LIKE after NOT"},
		{"a IN 'x'", 1, 6, `expected "("`},
		{"a IN ('x' 'y')", 1, 11, "expected ',' or ')'"},
		{"a LIKE 1", 1, 8, "LIKE pattern must be a string"},
		{"1 LIKE 'a'", 1, 1, "LIKE applies to a string"},
		{"a LIKE 'x' ESCAPE 'ab'", 1, 19, "ESCAPE character must be a string of one character"},
		{"EXISTS(1)", 1, 8, "expected a property name"},
		{"EXISTS(a", 1, 9, `expected ")"`},
		{"and = 1", 1, 1, "AND is a reserved word"},
		{"[] = 1", 1, 1, "empty delimited identifier"},
		{"a = 99999999999999999999", 1, 5, "out of the range of a 64-bit integer"},
		{"a = 12abc", 1, 5, "malformed number"},
		{"a = 1 -- why", 1, 7, "comments are not supported"},
		{"a = 1 /* why */", 1, 7, "comments are not supported"},
		{"a = 1 AND (b = 2", 1, 17, `expected ")"`},
		{"é = 'x' AND ü ~", 1, 15, "unexpected character"},
		{strings.Repeat("(", 70) + "a = 1" + strings.Repeat(")", 70), 1, 65, "nested deeper than 64"},
		{strings.Repeat("NOT ", 70) + "a = 1", 1, 257, "nested deeper than 64"},
		{"a = '" + strings.Repeat("x", 1100) + "'", 1, 1, "limit 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.expr[:min(len(tt.expr), 40)], func(t *testing.T) {
			_, err := Parse(tt.expr)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want an *Error", err)
			}
			if pe.Line != tt.line || pe.Column != tt.col || !strings.Contains(pe.Msg, tt.msg) {
				t.Fatalf("got %d:%d %q, want %d:%d containing %q", pe.Line, pe.Column, pe.Msg, tt.line, tt.col, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Errorf("Error() = %q, want it to start with the position", err.Error())
			}
		})
	}
}

func TestLike(t *testing.T) {
	tests := []struct {
		s, pat string
		esc    rune
		want   bool
	}{
		{"", "", -1, true},
		{"", "%", -1, true},
		{"", "_", -1, false},
		{"abc", "a%c", -1, true},
		{"abc", "a%%c", -1, true},
		{"abcbc", "%bc", -1, true},
		{"abcbd", "%bc", -1, false},
		{"héllo", "h_llo", -1, true},
		{"a_c", "a!_c", '!', true},
		{"abc", "a!_c", '!', false},
		{"a%", "a%%", '%', true},
		{"ab", "a%%", '%', false},
		{"aaa", "a%a%a", -1, true},
		{"aa", "a%a%a", -1, false},
	}
	for _, tt := range tests {
		got, err := like([]rune(tt.s), []rune(tt.pat), tt.esc)
		if err != nil || got != tt.want {
			t.Errorf("like(%q, %q, %q) = %v, %v; want %v", tt.s, tt.pat, tt.esc, got, err, tt.want)
		}
	}
}
