package sqlfilter

import (
	"errors"
	"testing"
)

// FuzzParse: no input makes the parser or the evaluator panic or hang; a
// refused input gets an *Error inside the input, and an accepted one
// evaluates to a match, a non-match or an *EvalError. Crashers are kept
// in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"color = 'red'", "sys.Label LIKE '%bus%' OR user.tag IN ('queue', 'topic', 'subscription')",
		"NOT EXISTS(a) AND b IS NOT NULL", "a + 1 * (2 - -3) % 4 / 5.5E-1 >= 0",
		"pct LIKE '100\\%' ESCAPE '\\'", "[Property With Space] = 'x' AND \"Contoso & Northwind\" <> ''",
		"p('a' + 'b') = newid()", "sys.To NOT IN ('Store1','Store2') OR StoreId NOT IN ('Store8')",
		"a = 'it''s'", "((((a = 1))))", "TRUE", "1=0",
	} {
		f.Add(s)
	}
	m := msg()
	f.Fuzz(func(t *testing.T, src string) {
		flt, err := Parse(src)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q): error %T %v, want *Error", src, err, err)
			}
			if pe.Offset < 0 || pe.Offset > len(src) || pe.Line < 1 || pe.Column < 1 {
				t.Fatalf("Parse(%q): position %+v outside the input", src, pe)
			}
			return
		}
		if flt.String() != src {
			t.Fatalf("String() = %q, want %q", flt.String(), src)
		}
		if _, err := flt.Match(m); err != nil {
			var ee *EvalError
			if !errors.As(err, &ee) {
				t.Fatalf("Match: error %T %v, want *EvalError", err, err)
			}
		}
		if _, err := flt.Match(&Message{}); err != nil {
			var ee *EvalError
			if !errors.As(err, &ee) {
				t.Fatalf("Match on an empty message: error %T %v, want *EvalError", err, err)
			}
		}
	})
}

// FuzzParseAction: the same for rule actions.
func FuzzParseAction(f *testing.F) {
	for _, s := range []string{
		"SET quantity = quantity / 2;", "SET a = 1; REMOVE b", "set [x y] = p('a') + 'b' remove c;;",
		"SET sys.Label = 'x'", "REMOVE", "SET a = -(-(1))",
	} {
		f.Add(s)
	}
	m := msg()
	f.Fuzz(func(t *testing.T, src string) {
		a, err := ParseAction(src)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Offset < 0 || pe.Offset > len(src) {
				t.Fatalf("ParseAction(%q): error %v, want an *Error inside the input", src, err)
			}
			return
		}
		if _, _, err := a.Apply(m); err != nil {
			var ee *EvalError
			if !errors.As(err, &ee) {
				t.Fatalf("Apply: error %T %v, want *EvalError", err, err)
			}
		}
	})
}
