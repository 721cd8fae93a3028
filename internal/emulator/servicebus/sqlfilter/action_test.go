package sqlfilter

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestAction(t *testing.T) {
	tests := []struct {
		src  string
		want string // changes
		prop string // a user property of the result
		val  any
	}{
		{"SET quantity = quantity / 2;", "[{quantity 5 false}]", "quantity", int64(5)},
		{"SET level = 'high'", "[{level high false}]", "LEVEL", "high"},
		{"REMOVE color", "[{color <nil> true}]", "color", nil},
		{"set a = 1; set b = a + 1; remove a", "[{b 2 false} {a <nil> true}]", "b", int64(2)},
		{"SET a = 1 SET a = 2", "[{a 2 false}]", "a", int64(2)},
		{"SET [my prop] = sys.Label + '!'", "[{my prop order.created! false}]", "my prop", "order.created!"},
		{"SET x = missing", "[{x <nil> false}]", "x", nil},
		{"SET flag = TRUE", "[{flag true false}]", "flag", true},
		{"SET user.price = price * 2;;", "[{price 5 false}]", "price", 5.0},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			a, err := ParseAction(tt.src)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			m := msg()
			out, changes, err := a.Apply(m)
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			if got := fmt.Sprint(changes); got != tt.want {
				t.Errorf("changes: got %s, want %s", got, tt.want)
			}
			if v, _ := out.User(tt.prop); v != tt.val {
				t.Errorf("%s: got %v (%T), want %v", tt.prop, v, v, tt.val)
			}
			if v, _ := m.User("color"); v != "red" {
				t.Errorf("the input message changed: color = %v", v)
			}
		})
	}
}

func TestParseActionErrors(t *testing.T) {
	tests := []struct {
		src       string
		line, col int
		msg       string
	}{
		{"", 1, 1, "empty action"},
		{"UPDATE a = 1", 1, 1, "expected SET or REMOVE"},
		{"SET a 1", 1, 7, `expected "="`},
		{"SET a = ", 1, 9, "expected a value"},
		{"SET a = b = c", 1, 11, "expected SET or REMOVE"},
		{"SET a = (b = 1)", 1, 12, "SET takes a value, found a condition"},
		{"SET sys.Label = 'x'", 1, 5, "SET on a system property is not supported"},
		{"REMOVE sys.To", 1, 8, "REMOVE on a system property"},
		{"SET sys.Nope = 1", 1, 9, "unknown system property"},
		{"SET a = @p", 1, 9, "parameters"},
		{"REMOVE 1", 1, 8, "expected a property name"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			_, err := ParseAction(tt.src)
			var pe *Error
			if !errors.As(err, &pe) || pe.Line != tt.line || pe.Column != tt.col || !strings.Contains(pe.Msg, tt.msg) {
				t.Fatalf("got %v, want %d:%d containing %q", err, tt.line, tt.col, tt.msg)
			}
		})
	}
}

func TestActionEvalError(t *testing.T) {
	a, err := ParseAction("SET q = quantity / 0")
	if err != nil {
		t.Fatal(err)
	}
	var ee *EvalError
	if _, _, err := a.Apply(msg()); !errors.As(err, &ee) {
		t.Fatalf("got %v, want an *EvalError", err)
	}
}
