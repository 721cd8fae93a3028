package chaos

import (
	"slices"
	"testing"
	"time"
)

// TestFaultPlan: a seed always yields the same plan; times are sorted and
// inside the window; with at least as many kills as kinds, every kind is in
// the plan (the smoke tier's 10 kills cover all of AllFaults).
func TestFaultPlan(t *testing.T) {
	tests := []struct {
		name      string
		kills     int
		faults    []string
		wantEvery bool
	}{
		{"smoke tier", 10, AllFaults, true},
		{"exactly one of each", len(AllFaults), AllFaults, true},
		{"fewer kills than kinds", 3, AllFaults, false},
		{"one kind", 5, []string{FaultRestart}, true},
		{"no kills", 0, AllFaults, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			window, pause := 45*time.Second, 3*time.Second
			plan := faultPlan(7, tt.kills, tt.faults, window, pause)
			if again := faultPlan(7, tt.kills, tt.faults, window, pause); !slices.Equal(plan, again) {
				t.Fatalf("same seed, another plan:\n%v\n%v", plan, again)
			}
			if len(plan) != tt.kills {
				t.Fatalf("got %d steps, want %d", len(plan), tt.kills)
			}
			seen := map[string]bool{}
			for i, st := range plan {
				if st.at < 0 || st.at >= window || st.pause < 0 || st.pause >= pause {
					t.Errorf("step %d: at %v, pause %v; want within [0, %v) and [0, %v)", i, st.at, st.pause, window, pause)
				}
				if i > 0 && st.at < plan[i-1].at {
					t.Errorf("step %d at %v before step %d at %v", i, st.at, i-1, plan[i-1].at)
				}
				if !slices.Contains(tt.faults, st.fault) {
					t.Errorf("step %d: fault %q not in %v", i, st.fault, tt.faults)
				}
				seen[st.fault] = true
			}
			if tt.wantEvery {
				for _, f := range tt.faults {
					if !seen[f] {
						t.Errorf("fault %q missing from the plan %v", f, plan)
					}
				}
			}
		})
	}
}
