package etags

import "testing"

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"0x8DC", "0x8DC"},
		{`"0x8DC"`, "0x8DC"},
		{`W/"0x8DC"`, "0x8DC"},
		{" \"0x8DC\"\t", "0x8DC"},
		{` "0x1" `, "0x1"},
		{`""0x1""`, "0x1"},
		{`"`, `"`},
		{`""`, ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEqualAndQuote(t *testing.T) {
	if !Equal(`"0x8DC"`, "0x8DC") || !Equal(`W/"0x8DC"`, " 0x8DC ") || Equal("0x8DC", "0x8DD") {
		t.Errorf("Equal disagrees with Normalize")
	}
	if got := Quote(`W/"0x8DC"`); got != `"0x8DC"` {
		t.Errorf("Quote = %q, want %q", got, `"0x8DC"`)
	}
}

// FuzzNormalize: Normalize is idempotent and Equal is reflexive over forms.
func FuzzNormalize(f *testing.F) {
	f.Add(`W/"0x8DC"`)
	f.Add(`"`)
	f.Fuzz(func(t *testing.T, e string) {
		n := Normalize(e)
		if Normalize(n) != n {
			t.Fatalf("Normalize(%q) = %q, but Normalize of that = %q", e, n, Normalize(n))
		}
		if !Equal(e, Quote(e)) {
			t.Fatalf("Equal(%q, Quote) = false", e)
		}
	})
}
