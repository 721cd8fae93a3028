package main

import (
	"strings"
	"testing"
)

const stream = `{"config":{"protocol_version":"v1.0.0","scanner_name":"govulncheck","scanner_version":"v1.7.0","db":"https://vuln.go.dev","go_version":"go1.26.8"}}
{"progress":{"message":"Scanning your code"}}
{"osv":{"id":"GO-1","summary":"bad thing in x/net"}}
{"osv":{"id":"GO-2","summary":"bad thing in net/http"}}
{"osv":{"id":"GO-3","summary":"imported, not called"}}
{"finding":{"osv":"GO-1","fixed_version":"v0.60.0","trace":[{"module":"golang.org/x/net","version":"v0.58.0"}]}}
{"finding":{"osv":"GO-1","fixed_version":"v0.60.0","trace":[{"module":"golang.org/x/net","version":"v0.58.0","package":"golang.org/x/net/http2","function":"Read"},{"module":"github.com/ffpipe/ffpipe","package":"p","function":"f"}]}}
{"finding":{"osv":"GO-2","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http","function":"Serve"}]}}
{"finding":{"osv":"GO-2","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http","function":"Get"}]}}
{"finding":{"osv":"GO-3","fixed_version":"v1.2.3","trace":[{"module":"example.com/m","version":"v1.0.0","package":"example.com/m/p"}]}}
`

func TestGate(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		failStdlib bool
		wantFail   bool
		wantLines  []string
	}{
		{"module vulnerability fails", stream, false, true, []string{
			"FAIL GO-1 golang.org/x/net@v0.58.0 (fixed in v0.60.0): bad thing in x/net",
			"warn GO-2 stdlib@v1.26.8 (fixed in v1.26.9): bad thing in net/http",
			"1 reachable in modules, 1 reachable in the Go standard library",
			"1 more in code that is imported but not called",
		}},
		{"stdlib only warns", strings.ReplaceAll(stream, `"function":"Read"`, `"function":""`), false, false, []string{
			"warn GO-2 stdlib@v1.26.8",
			"0 reachable in modules, 1 reachable in the Go standard library",
			"2 more in code",
		}},
		{"stdlib fails when asked", strings.ReplaceAll(stream, `"function":"Read"`, `"function":""`), true, true, []string{
			"FAIL GO-2 stdlib@v1.26.8",
		}},
		{"clean", `{"config":{"db":"file:///db","go_version":"go1.26.8"}}`, true, false, []string{
			"govulncheck against file:///db (go1.26.8):",
			"0 reachable in modules, 0 reachable in the Go standard library, 0 more",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := read(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			if got := r.report(&out, tt.failStdlib); got != tt.wantFail {
				t.Errorf("fail = %v, want %v\n%s", got, tt.wantFail, out.String())
			}
			for _, l := range tt.wantLines {
				if !strings.Contains(out.String(), l) {
					t.Errorf("output lacks %q:\n%s", l, out.String())
				}
			}
		})
	}
}

func TestGateBadInput(t *testing.T) {
	if _, err := read(strings.NewReader(`{"finding":`)); err == nil {
		t.Errorf("read of truncated JSON: got nil error")
	}
}
