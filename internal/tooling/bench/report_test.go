package bench

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	twenty := make([]float64, 20)
	for i := range twenty {
		twenty[i] = float64(20 - i) // 20 … 1, unsorted on purpose
	}
	tests := []struct {
		name string
		xs   []float64
		p    float64
		want float64
	}{
		{"empty", nil, 50, 0},
		{"one", []float64{7}, 95, 7},
		{"p50 of 20 is the 10th", twenty, 50, 10},
		{"p95 of 20 is the 19th", twenty, 95, 19},
		{"p100 is the max", twenty, 100, 20},
		{"p0 is the min", twenty, 0, 1},
		{"p50 of 5", []float64{5, 1, 4, 2, 3}, 50, 3},
		{"p95 of 5 is the max", []float64{5, 1, 4, 2, 3}, 95, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := slices.Clone(tt.xs)
			if got := Percentile(tt.xs, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.xs, tt.p, got, tt.want)
			}
			if !slices.Equal(before, tt.xs) {
				t.Errorf("Percentile modified its input: got %v, want %v", tt.xs, before)
			}
		})
	}
}

func TestRatioRate(t *testing.T) {
	tests := []struct {
		name      string
		got, want float64
	}{
		{"ratio", Ratio(11, 10), 1.1},
		{"ratio by zero", Ratio(1, 0), 0},
		{"rate", Rate(20000, 8*time.Second), 2500},
		{"rate of zero time", Rate(5, 0), 0},
	}
	for _, tt := range tests {
		if math.Abs(tt.got-tt.want) > 1e-9 {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestPeakRate(t *testing.T) {
	s := []Sample{{0, 0}, {0.5, 100}, {1, 200}, {1.5, 1700}, {2, 2200}, {3, 2300}}
	// Best window of ≥ 1 s: 1.0 → 2.0 adds 2000.
	if got, want := PeakRate(s, 1), 2000.0; got != want {
		t.Errorf("PeakRate = %v, want %v", got, want)
	}
	if got := PeakRate(s[:1], 1); got != 0 {
		t.Errorf("PeakRate of one sample = %v, want 0", got)
	}
}

func TestTargets(t *testing.T) {
	tests := []struct {
		name    string
		phases  []string
		res     Result
		wantMet map[string]bool
	}{
		{
			name:    "all met",
			phases:  AllPhases(),
			res:     Result{ThroughputRatio: 1.05, OverheadP50Ms: 300, DispatchTasksPerS: 2500, HandlerPeakRSSMB: 30, Latencies: make([]FileLatency, 1)},
			wantMet: map[string]bool{TargetThroughput: true, TargetOverhead: true, TargetDispatch: true, TargetMemory: true},
		},
		{
			name:    "bounds are inclusive",
			phases:  AllPhases(),
			res:     Result{ThroughputRatio: 1.10, OverheadP50Ms: 500, DispatchTasksPerS: 2000, HandlerPeakRSSMB: 64, Latencies: make([]FileLatency, 1)},
			wantMet: map[string]bool{TargetThroughput: true, TargetOverhead: true, TargetDispatch: true, TargetMemory: true},
		},
		{
			name:    "all missed",
			phases:  AllPhases(),
			res:     Result{ThroughputRatio: 1.2, OverheadP50Ms: 501, DispatchTasksPerS: 1999, HandlerPeakRSSMB: 65, Latencies: make([]FileLatency, 1)},
			wantMet: map[string]bool{TargetThroughput: false, TargetOverhead: false, TargetDispatch: false, TargetMemory: false},
		},
		{
			// A phase that failed before its figure leaves zeros behind;
			// a zero ratio or RSS is no measurement, never "met".
			name:    "failed phases never meet a target",
			phases:  AllPhases(),
			res:     Result{},
			wantMet: map[string]bool{TargetThroughput: false, TargetOverhead: false, TargetDispatch: false, TargetMemory: false},
		},
		{
			name:    "skipped phases never meet a target",
			phases:  []string{PhaseStandins},
			res:     Result{},
			wantMet: map[string]bool{TargetThroughput: false, TargetOverhead: false, TargetDispatch: false, TargetMemory: false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.res
			r.Config.Phases = tt.phases
			r.evaluateTargets()
			for k, want := range tt.wantMet {
				got, ok := r.Targets[k]
				if !ok {
					t.Fatalf("target %s missing", k)
				}
				if got.Met != want {
					t.Errorf("%s met = %v, want %v (%+v)", k, got.Met, want, got)
				}
			}
		})
	}
}

// TestJSONShape pins the top-level keys tools read from bench.json.
func TestJSONShape(t *testing.T) {
	r := Result{ThroughputRatio: 1.01}
	r.Config.Phases = AllPhases()
	r.evaluateTargets()
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{
		"throughput_ratio", "pipeline_seconds", "baseline_seconds", "latency_p50_ms", "latency_p95_ms",
		"overhead_p50_ms", "dispatch_tasks_per_s", "handler_peak_rss_mb", "servicebus_msgs_per_s",
		"batch_tasks_per_s", "targets", "machine", "date",
		"node_throughput_ratio", "video_node_throughput_ratio", "sweep_files_per_s",
		"sweep_storage_calls_per_file", "sweep_batch_calls_per_file",
	} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON has no key %q", k)
		}
	}
	var targets map[string]struct {
		Op     string   `json:"op"`
		Target *float64 `json:"target"`
		Value  *float64 `json:"value"`
		Met    *bool    `json:"met"`
	}
	if err := json.Unmarshal(m["targets"], &targets); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{TargetThroughput, TargetOverhead, TargetDispatch, TargetMemory, TargetNode, TargetVideoNode, TargetSweep} {
		tg, ok := targets[k]
		if !ok || tg.Target == nil || tg.Value == nil || tg.Met == nil || (tg.Op != "<=" && tg.Op != ">=") {
			t.Errorf("targets.%s = %+v, want op, target, value and met", k, tg)
		}
	}
	if m := targets[TargetThroughput].Met; m == nil || !*m {
		t.Errorf("targets.%s.met = false, want true for ratio 1.01", TargetThroughput)
	}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "target <= 1.10: MET") {
		t.Errorf("table does not show the met throughput target:\n%s", table.String())
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name      string
		line      string
		wantPPID  int
		wantTicks int64
		wantOK    bool
	}{
		{"plain", "123 (node) S 77 123 123 0 -1 4194560 100 0 0 0 10 5 3 2 20 0 11 0 500 1000 200", 77, 20, true},
		{"spaces and parens in the name", "9 (a (b) c) R 1 9 9 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 5 6 7", 1, 10, true},
		{"truncated", "9 (x) R 1 9", 0, 0, false},
		{"no name", "garbage", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ppid, ticks, ok := parseStat(tt.line)
			if ppid != tt.wantPPID || ticks != tt.wantTicks || ok != tt.wantOK {
				t.Errorf("parseStat = %d, %d, %v; want %d, %d, %v", ppid, ticks, ok, tt.wantPPID, tt.wantTicks, tt.wantOK)
			}
		})
	}
}

func TestCPUPer1000(t *testing.T) {
	s := time.Second
	tests := []struct {
		name       string
		cpu0, cpu1 map[string]time.Duration
		n          int
		want       map[string]float64
	}{
		{"per part", map[string]time.Duration{"self": 2 * s, "node": s}, map[string]time.Duration{"self": 6 * s, "node": s + 500*time.Millisecond}, 2000,
			map[string]float64{"self": 2, "node": 0.25}},
		{"a part that started in between counts from zero", map[string]time.Duration{"self": s}, map[string]time.Duration{"self": s, "handler": 3 * s}, 1000,
			map[string]float64{"handler": 3}},
		{"no work", map[string]time.Duration{}, map[string]time.Duration{"self": s}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cpuPer1000(tt.cpu0, tt.cpu1, tt.n); !maps.Equal(got, tt.want) {
				t.Errorf("cpuPer1000 = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTargetsUnmeasured: a phase that ran but ended early is reported as not
// measured, in the JSON and in the table, not as met or skipped.
func TestTargetsUnmeasured(t *testing.T) {
	r := Result{}
	r.Config.Phases = []string{PhaseThroughput}
	r.evaluateTargets()
	for _, k := range []string{TargetThroughput, TargetOverhead, TargetMemory} {
		if got := r.Targets[k]; !got.Unmeasured || got.Met || got.Skipped {
			t.Errorf("%s = %+v, want unmeasured, not met, not skipped", k, got)
		}
	}
	if got := r.Targets[TargetDispatch]; !got.Skipped || got.Unmeasured {
		t.Errorf("dispatch = %+v, want skipped", got)
	}
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), ": MET") || !strings.Contains(b.String(), "NOT MEASURED") {
		t.Errorf("table of a failed run:\n%s", b.String())
	}
}

// TestNodeAndSweepTargets: the issue-18 targets, inclusive bounds, and a
// video figure the run could not measure is never met.
func TestNodeAndSweepTargets(t *testing.T) {
	for _, tc := range []struct {
		name              string
		node, video, rate float64
		want              map[string]bool
		unmeasured        []string
	}{
		{"met at the bounds", 1.05, 1.03, 200, map[string]bool{TargetNode: true, TargetVideoNode: true, TargetSweep: true}, nil},
		{"missed", 1.051, 1.031, 199.9, map[string]bool{TargetNode: false, TargetVideoNode: false, TargetSweep: false}, nil},
		{"video not measured", 1.01, 0, 250, map[string]bool{TargetNode: true, TargetVideoNode: false, TargetSweep: true}, []string{TargetVideoNode}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Result{}
			r.NodeThroughputRatio, r.VideoNodeThroughputRatio, r.SweepFilesPerS = tc.node, tc.video, tc.rate
			r.Config.Phases = []string{PhaseNode, PhaseSweep}
			r.evaluateTargets()
			for k, want := range tc.want {
				if got := r.Targets[k]; got.Met != want || got.Skipped {
					t.Errorf("%s = %+v, want met %v", k, got, want)
				}
			}
			for _, k := range tc.unmeasured {
				if got := r.Targets[k]; !got.Unmeasured {
					t.Errorf("%s = %+v, want unmeasured", k, got)
				}
			}
		})
	}
}

func TestMedianAndStudy(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	st := NodeStudy{Rounds: []NodeRound{{Ratio: 1.10, CPURatio: 1.02}, {Ratio: 1.02, CPURatio: 1.01}, {Ratio: 1.04, CPURatio: 1.03}}}
	st.summarise()
	if st.RatioMedian != 1.04 || st.RatioMin != 1.02 || st.RatioMax != 1.10 || st.CPURatioMed != 1.02 {
		t.Errorf("summarise = median %v [%v–%v] cpu %v, want 1.04 [1.02–1.10] cpu 1.02", st.RatioMedian, st.RatioMin, st.RatioMax, st.CPURatioMed)
	}
}

func TestCallKind(t *testing.T) {
	for _, tc := range []struct{ method, url, want string }{
		{"GET", "/devstoreaccount1/input?restype=container&comp=list", "GET comp=list"},
		{"PUT", "/devstoreaccount1/status?restype=container", "PUT restype=container"},
		{"HEAD", "/devstoreaccount1/output/a.mp3", "HEAD"},
	} {
		r := httptest.NewRequest(tc.method, tc.url, nil)
		if got := callKind(r); got != tc.want {
			t.Errorf("callKind(%s %s) = %q, want %q", tc.method, tc.url, got, tc.want)
		}
	}
}
