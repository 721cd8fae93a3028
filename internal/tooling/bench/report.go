package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"text/tabwriter"
	"time"
)

// Target names (keys of Result.Targets).
const (
	TargetThroughput = "throughput_ratio"
	TargetOverhead   = "overhead_p50_ms"
	TargetDispatch   = "dispatch_tasks_per_s"
	TargetMemory     = "handler_peak_rss_mb"
	TargetNode       = "node_throughput_ratio"
	TargetVideoNode  = "video_node_throughput_ratio"
	TargetSweep      = "sweep_files_per_s"
	TargetStatus     = "status_p50_ms"
)

// Target is one goal and whether the run met it.
type Target struct {
	// Op is "<=" (value must not exceed Target) or ">=".
	Op     string  `json:"op"`
	Target float64 `json:"target"`
	Value  float64 `json:"value"`
	Met    bool    `json:"met"`
	// Skipped: the phase that measures it did not run (Met is false).
	Skipped bool `json:"skipped,omitempty"`
	// Unmeasured: the phase ran but ended before it produced the figure
	// (an error is reported with the run; Met is false).
	Unmeasured bool `json:"unmeasured,omitempty"`
}

// DefaultTargets are issue 8's targets.
func DefaultTargets() map[string]Target {
	return map[string]Target{
		TargetThroughput: {Op: "<=", Target: 1.10},
		TargetOverhead:   {Op: "<=", Target: 500},
		TargetDispatch:   {Op: ">=", Target: 2000},
		TargetMemory:     {Op: "<=", Target: 64},
		TargetNode:       {Op: "<=", Target: 1.05},
		TargetVideoNode:  {Op: "<=", Target: 1.03},
		TargetSweep:      {Op: ">=", Target: 200},
		TargetStatus:     {Op: "<=", Target: 300},
	}
}

// evaluate fills Value and Met from value; skipped marks a phase not run,
// measured whether the phase produced the figure at all.
func (t Target) evaluate(value float64, skipped, measured bool) Target {
	t.Value, t.Skipped = round(value, 3), skipped
	t.Unmeasured = !skipped && !measured
	switch {
	case skipped || t.Unmeasured || math.IsNaN(value):
		t.Met = false
	case t.Op == ">=":
		t.Met = value >= t.Target
	default:
		t.Met = value <= t.Target
	}
	return t
}

// Machine describes where the run happened.
type Machine struct {
	Cores     int     `json:"cores"`
	MemoryGiB float64 `json:"memory_gib"`
	OS        string  `json:"os"`
	Go        string  `json:"go"`
	FFmpeg    string  `json:"ffmpeg"`
	// LoadStart and LoadEnd are the 1-minute load averages when the run
	// started and ended: the machine may be shared, and every figure but
	// the stand-ins' depends on free CPU.
	LoadStart float64 `json:"load_average_start"`
	LoadEnd   float64 `json:"load_average_end"`
}

// loadAverage is the 1-minute load average (0 if unknown).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var v float64
	_, _ = fmt.Sscanf(string(b), "%f", &v)
	return v
}

// Config is what the run was asked to do (echoed in the JSON).
type Config struct {
	Quick            bool     `json:"quick"`
	Seed             uint64   `json:"seed"`
	Preset           string   `json:"preset"`
	Files            int      `json:"files"`
	ClipSeconds      float64  `json:"clip_seconds"`
	Width            int      `json:"width"`
	Height           int      `json:"height"`
	LatencyFiles     int      `json:"latency_files"`
	DispatchMessages int      `json:"dispatch_messages"`
	StandinMessages  int      `json:"standin_messages"`
	StandinTasks     int      `json:"standin_tasks"`
	Slots            int      `json:"slots"`
	TaskSlots        int      `json:"task_slots"`
	Phases           []string `json:"phases"`
	NodeRounds       int      `json:"node_rounds"`
	SweepTasks       int      `json:"sweep_tasks"`
	// SweepAzuriteInMemory: the sweep phase's Azurite kept its data in memory.
	SweepAzuriteInMemory bool              `json:"sweep_azurite_in_memory,omitempty"`
	StatusRecords        int               `json:"status_records_seeded"`
	Settings             map[string]string `json:"settings,omitempty"`
}

// FileLatency is one file of the latency phase.
type FileLatency struct {
	Blob       string  `json:"blob"`
	LatencyMs  float64 `json:"latency_ms"`
	FFmpegMs   float64 `json:"ffmpeg_ms"`
	OverheadMs float64 `json:"overhead_ms"`
	// Stages (ms after the upload ended): when Dispatch recorded the task,
	// when the task started and ended on the node.
	DispatchedMs float64 `json:"dispatched_ms,omitempty"`
	StartedMs    float64 `json:"started_ms,omitempty"`
}

// Sample is one point of the dispatch curve: tasks in the job at T seconds.
type Sample struct {
	T     float64 `json:"t"`
	Tasks int     `json:"tasks"`
}

// Result is everything one run measured. The top-level figures are the
// ones issue 8 names; zero means "not measured" (see Skipped).
type Result struct {
	Date    time.Time `json:"date"`
	Machine Machine   `json:"machine"`
	Config  Config    `json:"config"`

	// Throughput: all uploaded → all outputs present, against the baseline.
	ThroughputRatio float64 `json:"throughput_ratio"`
	PipelineSeconds float64 `json:"pipeline_seconds"`
	BaselineSeconds float64 `json:"baseline_seconds"`
	// BaselineRuns are the baseline's wall times before and after the
	// pipeline run; BaselineSeconds is their mean.
	BaselineRuns  []float64 `json:"baseline_runs_seconds"`
	UploadSeconds float64   `json:"upload_seconds"`
	// PipelineCPUSeconds is the CPU the whole local stack (ffmpeg, shells,
	// stand-ins, host, handler, Azurite) used over the pipeline's window;
	// against the baseline's ffmpeg CPU it is the pipeline's extra work,
	// which a busy shared machine does not distort as it does wall times.
	PipelineCPUSeconds float64 `json:"pipeline_cpu_seconds"`
	ThroughputCPURatio float64 `json:"throughput_cpu_ratio"`
	// PipelineCPUBySource splits PipelineCPUSeconds: "self" (the in-process
	// stand-ins and host), "reaped" (task shells and ffmpeg), "node"
	// (Azurite), "handler".
	PipelineCPUBySource map[string]float64 `json:"pipeline_cpu_by_source_seconds,omitempty"`
	// ThroughputCPURatioNoStorage leaves Azurite out: in Azure the storage
	// service's CPU is not on the pool's nodes.
	ThroughputCPURatioNoStorage float64 `json:"throughput_cpu_ratio_without_storage"`
	BaselineCPUSeconds          float64 `json:"baseline_cpu_seconds"`
	ThroughputVerified          int     `json:"throughput_outputs_verified"`
	AudioSecondsPerWall         float64 `json:"pipeline_audio_seconds_per_second"`

	// Latency: one file at a time, warm pool.
	LatencyP50Ms  float64       `json:"latency_p50_ms"`
	LatencyP95Ms  float64       `json:"latency_p95_ms"`
	OverheadP50Ms float64       `json:"overhead_p50_ms"`
	OverheadP95Ms float64       `json:"overhead_p95_ms"`
	FFmpegP50Ms   float64       `json:"ffmpeg_p50_ms"`
	Latencies     []FileLatency `json:"latency_files,omitempty"`

	// Dispatch: queue → host → Dispatch → Batch (zero-node pool).
	DispatchTasksPerS float64  `json:"dispatch_tasks_per_s"`
	DispatchSeconds   float64  `json:"dispatch_seconds"`
	DispatchTasks     int      `json:"dispatch_tasks"`
	DispatchPeakPerS  float64  `json:"dispatch_peak_tasks_per_s"`
	DispatchCurve     []Sample `json:"dispatch_curve,omitempty"`
	// DispatchCPUSecondsPer1000 is the CPU each part of the stack spent
	// per 1,000 tasks over the dispatch window: "self" (this process: the
	// Service Bus and Batch stand-ins, the host and the bench's polling),
	// "handler", "node" (Azurite).
	DispatchCPUSecondsPer1000 map[string]float64 `json:"dispatch_cpu_s_per_1000_tasks,omitempty"`

	// Handler memory (VmHWM of the handler process).
	HandlerPeakRSSMB       float64 `json:"handler_peak_rss_mb"`
	HandlerRSSThroughputMB float64 `json:"handler_rss_throughput_mb"`
	HandlerRSSDispatchMB   float64 `json:"handler_rss_dispatch_mb"`

	// Stand-ins alone.
	ServiceBusMsgsPerS    float64 `json:"servicebus_msgs_per_s"`
	ServiceBusSendPerS    float64 `json:"servicebus_send_msgs_per_s"`
	ServiceBusReceivePerS float64 `json:"servicebus_receive_complete_msgs_per_s"`
	// The same through the JavaScript SDK (@azure/service-bus).
	ServiceBusJSMsgsPerS    float64 `json:"servicebus_js_msgs_per_s"`
	ServiceBusJSSendPerS    float64 `json:"servicebus_js_send_msgs_per_s"`
	ServiceBusJSReceivePerS float64 `json:"servicebus_js_receive_complete_msgs_per_s"`
	BatchTasksPerS          float64 `json:"batch_tasks_per_s"`
	// Azurite alone: what bounds Dispatch (reads and durable writes per task).
	AzuriteReadPerS  float64 `json:"azurite_properties_per_s"`
	AzuritePutPerS   float64 `json:"azurite_put_per_s"`
	AzuritePut64PerS float64 `json:"azurite_put_64_in_flight_per_s"`

	// Node: the node/cloud split (node.go) and Sweep's rate (sweeprate.go).
	NodeFigures
	SweepFigures
	StatusFigures

	Targets map[string]Target `json:"targets"`
	Skipped []string          `json:"skipped,omitempty"`
	Notes   []string          `json:"notes,omitempty"`
}

// evaluateTargets fills Targets from the figures.
func (r *Result) evaluateTargets() {
	ran := func(p string) bool { return slices.Contains(r.Config.Phases, p) }
	t := DefaultTargets()
	// A figure of zero is one the phase never got to: a ratio, a rate and
	// an RSS of a run that happened are all positive.
	t[TargetThroughput] = t[TargetThroughput].evaluate(r.ThroughputRatio, !ran(PhaseThroughput), r.ThroughputRatio > 0)
	t[TargetOverhead] = t[TargetOverhead].evaluate(r.OverheadP50Ms, !ran(PhaseThroughput) && !ran(PhaseLatency), len(r.Latencies) > 0)
	t[TargetDispatch] = t[TargetDispatch].evaluate(r.DispatchTasksPerS, !ran(PhaseDispatch), r.DispatchTasksPerS > 0)
	t[TargetMemory] = t[TargetMemory].evaluate(r.HandlerPeakRSSMB, !ran(PhaseThroughput) && !ran(PhaseLatency) && !ran(PhaseDispatch), r.HandlerPeakRSSMB > 0)
	t[TargetNode] = t[TargetNode].evaluate(r.NodeThroughputRatio, !ran(PhaseNode), r.NodeThroughputRatio > 0)
	t[TargetVideoNode] = t[TargetVideoNode].evaluate(r.VideoNodeThroughputRatio, !ran(PhaseNode), r.VideoNodeThroughputRatio > 0)
	t[TargetSweep] = t[TargetSweep].evaluate(r.SweepFilesPerS, !ran(PhaseSweep), r.SweepFilesPerS > 0)
	t[TargetStatus] = t[TargetStatus].evaluate(r.StatusP50Ms, !ran(PhaseStatus), r.StatusRecords > 0)
	r.Targets = t
}

// WriteJSON writes the result, indented.
func (r Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable prints the figures and the targets.
func (r Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(name, value, target string) { fmt.Fprintf(tw, "%s\t%s\t%s\n", name, value, target) }
	tgt := func(key string) string {
		t, ok := r.Targets[key]
		switch {
		case !ok:
			return ""
		case t.Skipped:
			return fmt.Sprintf("target %s %s: skipped", t.Op, fmtNum(t.Target))
		case t.Unmeasured:
			return fmt.Sprintf("target %s %s: NOT MEASURED (the phase failed)", t.Op, fmtNum(t.Target))
		case t.Met:
			return fmt.Sprintf("target %s %s: MET", t.Op, fmtNum(t.Target))
		}
		return fmt.Sprintf("target %s %s: MISSED", t.Op, fmtNum(t.Target))
	}
	fmt.Fprintf(tw, "FIGURE\tVALUE\tTARGET\n")
	row("machine", fmt.Sprintf("%d cores, %.0f GiB, load %.1f → %.1f", r.Machine.Cores, r.Machine.MemoryGiB, r.Machine.LoadStart, r.Machine.LoadEnd), r.Date.Format(time.RFC3339))
	c := r.Config
	row("throughput: files", fmt.Sprintf("%d × %.0fs %dx%d", c.Files, c.ClipSeconds, c.Width, c.Height), "")
	row("  pipeline (all uploaded → all outputs)", fmt.Sprintf("%.2f s", r.PipelineSeconds), "")
	row("  baseline (xargs -P cores ffmpeg), mean", fmt.Sprintf("%.2f s %v", r.BaselineSeconds, r.BaselineRuns), "")
	row("  ratio pipeline / baseline", fmt.Sprintf("%.3f", r.ThroughputRatio), tgt(TargetThroughput))
	row("  CPU pipeline / baseline", fmt.Sprintf("%.2f / %.2f s = %.3f %v", r.PipelineCPUSeconds, r.BaselineCPUSeconds, r.ThroughputCPURatio, r.PipelineCPUBySource), "")
	row("  CPU ratio without Azurite (storage is not on the node in Azure)", fmt.Sprintf("%.3f", r.ThroughputCPURatioNoStorage), "")
	row("  upload (not counted)", fmt.Sprintf("%.2f s", r.UploadSeconds), "")
	row("latency: files (one at a time)", fmt.Sprint(len(r.Latencies)), "")
	row("  latency p50 / p95", fmt.Sprintf("%.0f / %.0f ms", r.LatencyP50Ms, r.LatencyP95Ms), "")
	row("  ffmpeg alone p50", fmt.Sprintf("%.0f ms", r.FFmpegP50Ms), "")
	row("  overhead p50 / p95", fmt.Sprintf("%.0f / %.0f ms", r.OverheadP50Ms, r.OverheadP95Ms), tgt(TargetOverhead))
	row("dispatch: tasks", fmt.Sprintf("%d in %.2f s", r.DispatchTasks, r.DispatchSeconds), "")
	row("  dispatch rate (peak 1 s)", fmt.Sprintf("%.0f tasks/s (%.0f)", r.DispatchTasksPerS, r.DispatchPeakPerS), tgt(TargetDispatch))
	row("  dispatch CPU s per 1,000 tasks", fmt.Sprintf("%v", r.DispatchCPUSecondsPer1000), "")
	row("handler peak RSS (throughput / dispatch)", fmt.Sprintf("%.1f MB (%.1f / %.1f)", r.HandlerPeakRSSMB, r.HandlerRSSThroughputMB, r.HandlerRSSDispatchMB), tgt(TargetMemory))
	row("node phase: node cpus | cloud cpus", r.NodeCPUs+" | "+r.CloudCPUs, "")
	for _, st := range r.NodeStudies {
		row(fmt.Sprintf("  %s, %d slot(s) per node core (requiredSlots %d): ratio median [min–max]", st.Profile, st.SlotsPerCore, st.RequiredSlots),
			fmt.Sprintf("%.3f [%.3f–%.3f] over %d rounds; CPU ratio %.3f", st.RatioMedian, st.RatioMin, st.RatioMax, len(st.Rounds), st.CPURatioMed), "")
	}
	row("  node throughput ratio (audio, best slot count)", fmt.Sprintf("%.3f (%d slot/core)", r.NodeThroughputRatio, r.NodeSlotsPerCore), tgt(TargetNode))
	row("  video node throughput ratio (web)", fmt.Sprintf("%.3f (%d slot/core)", r.VideoNodeThroughputRatio, r.VideoNodeSlotsPerCore), tgt(TargetVideoNode))
	row("sweep: files settled", fmt.Sprintf("%d in %.2f s; %.2f storage + %.2f Batch calls per file", r.SweepFiles, r.SweepSeconds, r.SweepStorageCallsPerFile, r.SweepBatchCallsPerFile), "")
	row("  sweep CPU per file (ms) / Azurite's bound", fmt.Sprintf("%v / %.0f files/s (%.2f ms per call)", r.SweepCPUMsPerFile, r.SweepStorageBoundFilesPerS, r.SweepAzuriteMsPerCall), "")
	row("  Azurite alone, a settled file's storage calls", fmt.Sprintf("%.0f files/s, %.2f ms of its CPU per file", r.SweepAzuriteAloneFilesPerS, r.SweepAzuriteAloneCPUMsPerFile), "")
	row("  sweep rate", fmt.Sprintf("%.0f files/s", r.SweepFilesPerS), tgt(TargetSweep))
	row("status: records (seeded in / index rebuilt in)", fmt.Sprintf("%d (%.1f s / %.1f s)", r.StatusRecords, r.StatusSeedSeconds, r.StatusRebuildSeconds), "")
	row("  status summary p50 / p95; one key; HTML", fmt.Sprintf("%.0f / %.0f ms; %.0f ms; %.0f ms", r.StatusP50Ms, r.StatusP95Ms, r.StatusKeyP50Ms, r.StatusHTMLP50Ms), tgt(TargetStatus))
	row("service bus stand-in send+receive+complete", fmt.Sprintf("%.0f msg/s (send %.0f, receive+complete %.0f)", r.ServiceBusMsgsPerS, r.ServiceBusSendPerS, r.ServiceBusReceivePerS), "")
	row("  through the JavaScript SDK", fmt.Sprintf("%.0f msg/s (send %.0f, receive+complete %.0f)", r.ServiceBusJSMsgsPerS, r.ServiceBusJSSendPerS, r.ServiceBusJSReceivePerS), "")
	row("batch stand-in addtaskcollection", fmt.Sprintf("%.0f tasks/s", r.BatchTasksPerS), "")
	row("azurite alone: properties / small put (16, 64 in flight)", fmt.Sprintf("%.0f / %.0f, %.0f ops/s", r.AzuriteReadPerS, r.AzuritePutPerS, r.AzuritePut64PerS), "")
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "skipped: %s\n", s)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

func fmtNum(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// Percentile is the nearest-rank p-th percentile (0 < p ≤ 100) of xs: the
// smallest value with at least p % of the values at or below it. It
// returns 0 for no values and does not modify xs.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// Ratio is a/b, or 0 when b is zero.
func Ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Rate is n events over d, per second (0 for d ≤ 0).
func Rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// PeakRate is the highest increase of Tasks over any window of at least
// window seconds between samples, per second.
func PeakRate(samples []Sample, window float64) float64 {
	best := 0.0
	j := 0
	for i := range samples {
		for j < i && samples[i].T-samples[j+1].T >= window {
			j++
		}
		if dt := samples[i].T - samples[j].T; dt >= window && dt > 0 {
			best = max(best, float64(samples[i].Tasks-samples[j].Tasks)/dt)
		}
	}
	return best
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
