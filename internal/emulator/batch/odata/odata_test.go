package odata

import (
	"errors"
	"testing"
	"time"
)

var schema = Schema{
	"id":                     {Kind: String, StartsWith: true},
	"state":                  {Kind: String, EqOnly: true},
	"executionInfo/exitCode": {Kind: Int},
	"executionInfo/result":   {Kind: String, EqOnly: true},
	"creationTime":           {Kind: DateTime},
	"enabled":                {Kind: Bool},
}

var created = time.Date(2025, 2, 13, 23, 25, 33, 0, time.UTC)

func getter(vals map[string]any) Getter {
	return func(p string) (any, bool) {
		v, ok := vals[p]
		return v, ok
	}
}

func TestEval(t *testing.T) {
	done := getter(map[string]any{"id": "Task-07", "state": "completed", "executionInfo/exitCode": int64(3),
		"executionInfo/result": "failure", "creationTime": created, "enabled": true})
	active := getter(map[string]any{"id": "task-08", "state": "active", "creationTime": created, "enabled": false})
	tests := []struct {
		filter     string
		done, actv bool
	}{
		{"state eq 'completed'", true, false},
		{"state eq 'Completed'", true, false},
		{"state ne 'completed'", false, true},
		{"state eq 'completed' and executionInfo/result eq 'Failure'", true, false},
		{"(executionInfo/exitCode lt 0) or (executionInfo/exitCode gt 0)", true, false},
		{"executionInfo/exitCode ne 0", true, true},
		{"executionInfo/exitCode ge 3 and executionInfo/exitCode le 3", true, false},
		{"startswith(id,'task-0')", true, true},
		{"startswith(id,'TASK-08')", false, true},
		{"id gt 'task-07'", false, true},
		{"not (state eq 'active')", true, false},
		{"creationTime eq DateTime'2025-02-13T23:25:33Z'", true, true},
		{"creationTime gt datetime'2025-02-14T00:00:00Z'", false, false},
		{"enabled eq true", true, false},
		{"id eq 'it''s'", false, false},
		{"STATE EQ 'x'", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			e, err := Parse(tt.filter, schema)
			if tt.filter == "STATE EQ 'x'" {
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("got %v, want ErrSyntax (property names are case-sensitive)", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got := e.Eval(done); got != tt.done {
				t.Errorf("completed task: got %v, want %v", got, tt.done)
			}
			if got := e.Eval(active); got != tt.actv {
				t.Errorf("active task: got %v, want %v", got, tt.actv)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, f := range []string{
		"", "state", "state eq", "state eq 'a", "state lt 'a'", "colour eq 'red'", "state eq 3",
		"executionInfo/exitCode eq 'x'", "creationTime eq '2025'", "creationTime eq DateTime'bad'",
		"(state eq 'a'", "state eq 'a')", "startswith(state,'a')", "startswith(id 'a')", "state eq 'a' and",
		"state like 'a'", "enabled eq maybe", "enabled gt true", "state eq 'a' # x", "-", "executionInfo/exitCode eq 99999999999999999999",
	} {
		if _, err := Parse(f, schema); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q): got %v, want ErrSyntax", f, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"state eq 'completed'", "state eq 'completed' and executionInfo/result eq 'failure'",
		"(executionInfo/exitCode lt 0) or (executionInfo/exitCode gt 0)", "startswith(id,'a')",
		"not (creationTime ge DateTime'2025-01-01T00:00:00Z')", "enabled eq true", "id eq 'it''s'",
	} {
		f.Add(s)
	}
	vals := getter(map[string]any{"id": "x", "state": "active", "executionInfo/exitCode": int64(1), "creationTime": created, "enabled": true})
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s, schema)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v does not wrap ErrSyntax", err)
			}
			return
		}
		e.Eval(vals)
		e.Eval(getter(nil))
	})
}
