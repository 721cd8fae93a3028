// Package chaos is the ledger-checked fault-injection harness of
// docs/reliability.md ("prove that nothing is lost"). It runs the
// whole local stack with the stand-ins as child processes, drops N valid
// clips and the poison set (media.PoisonSet) into the input container
// (some also submitted as queue messages), SIGKILLs components at seeded
// random times and restarts them, duplicates, delays and replays Event Grid
// deliveries, drops the Service Bus connections, overwrites a blob while it
// is processed and deletes one before dispatch. Then it stops the faults,
// drains (until everything is resolved, nothing moved for QuietPeriod, or
// the DrainTimeout cap; rows in flight at the cap are unfinished, not lost)
// and checks the invariants of docs/reliability.md#invariants with Check:
//
//	lost, duplicate_outputs, unexpected_outputs, wrongly_deleted_inputs,
//	wrong_outcome, invalid_outputs (ffprobe: one mp3 stream, decoded
//	duration ±0.1 s), dlq_unresolved
//
// and reports executions per input (the Batch stand-in's "batch task
// running" log lines per task id: one per attempt), kills per component,
// dead letters by reason, drain time and any secret found in a log line.
//
// Faults and how they are made:
//
//	handler      SIGKILL of the custom handler process (the host restarts it)
//	restart      the host restarts its worker as after a functionTimeout
//	             (POST /admin/host/restart: the host SIGKILLs the handler, starts
//	             a new one at once, and every invocation in flight fails)
//	funchost     SIGKILL of the `ffpipe emulator funchost` process and its handler
//	servicebus   SIGKILL of `ffpipe emulator servicebus` (durable log on disk)
//	batch        SIGKILL of `ffpipe emulator batch` and its task processes (node
//	             loss: running tasks are requeued by the restarted stand-in)
//	eventgrid    SIGKILL of `ffpipe emulator eventgrid` (cursor on disk)
//	azurite      SIGKILL of Azurite's node process
//	ffmpeg       SIGKILL of one running ffmpeg task process (nonzero exit: a retry)
//	sbdrop       every AMQP connection between the function app and the broker
//	             cut by a TCP proxy (the broker lives)
//	events       a proxy in front of the host's webhook delays (reorders) and
//	             duplicates deliveries while faults run, and replays a sample
//	             of all captured events after the work is done
//
// Azurite keeps blob metadata in memory and saves it every 5 s
// (LokiJS autosave), so a SIGKILL of Azurite can roll storage back by up to
// 5 s, which Azure Storage never does. The harness, being the user, checks
// its own uploads and deletes after every Azurite restart and repeats the
// ones that were rolled back (the replaced key is recorded as superseded);
// what the rollback does to the pipeline's own writes is the pipeline's to
// survive.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ffpipe/ffpipe/internal/tooling/stack"
)

// Fault names (the kill targets are stack component names plus these).
const (
	FaultHandler = "handler"
	FaultFFmpeg  = "ffmpeg"
	FaultSBDrop  = "sbdrop"
	// FaultRestart is the host restarting its worker as after a
	// functionTimeout (POST /admin/host/restart): SIGKILL of the handler
	// by the host, which starts a new one at once; every invocation in
	// flight fails.
	FaultRestart = "restart"
)

// AllFaults is the default fault mix: every component, the handler (killed
// from outside, and restarted by the host as the real host does), a
// running ffmpeg and a Service Bus connection drop.
var AllFaults = []string{FaultHandler, FaultRestart, stack.Host, stack.ServiceBus, stack.Batch, stack.EventGrid, stack.Azurite, FaultFFmpeg, FaultSBDrop}

// Options configure a run.
type Options struct {
	// AppDir is the packaged function app (dist/). Required.
	AppDir string
	// Exec is the ffpipe binary that runs the stand-ins. Required.
	Exec string
	// Dir holds media, stack state and logs. Default: a temporary
	// directory, removed afterwards unless Keep.
	Dir  string
	Keep bool
	// Files is the number of valid clips (besides the poison set).
	Files int
	// Kills is the number of faults injected (drawn from Faults).
	Kills int
	// Seed makes media, fault times and targets reproducible.
	Seed uint64
	// Faults to draw from. Default AllFaults.
	Faults []string
	// MinDuration/MaxDuration of the valid clips. Default 1–2 s.
	MinDuration, MaxDuration time.Duration
	// PoisonLong is the very-long poison case (media.PoisonOptions.LongDuration);
	// negative omits it. Default: omitted.
	PoisonLong time.Duration
	// NoPoison leaves the poison set out.
	NoPoison bool
	// Profiles is the number of video clips uploaded with a media profile
	// in their metadata (web and hls in turn; profiles.go). Default 0.
	Profiles int
	// MaxInputBytes is FFPIPE_MAX_INPUT_BYTES (and the size poison
	// cases). Default 8 MiB.
	MaxInputBytes int64
	// Slots are the Batch stand-in's task slots. Default 2.
	Slots int
	// FaultWindow is how long faults run from the first upload. Default:
	// max(30 s, 0.5 s per input).
	FaultWindow time.Duration
	// MaxRestartDelay bounds the random pause before a killed component is
	// started again. Default 3 s.
	MaxRestartDelay time.Duration
	// DrainTimeout is the drain's generous cap: reached while the pipeline
	// is still moving (a slow machine), the rows still in flight are
	// reported unfinished, apart from lost. Default 20 min.
	DrainTimeout time.Duration
	// QuietPeriod: the drain also ends when nothing moved for this long
	// with work left (what is left is then stuck: lost). It must exceed the
	// pipeline's longest legitimate pause (Sweep's retry backoff, up to
	// 2 min; reconcile). Default 4 min.
	QuietPeriod time.Duration
	// CacheDir caches generated clips across runs. Default
	// $TMPDIR/ffpipe-chaos-media.
	CacheDir string
	// Logger for the harness's own progress. Default: discard.
	Logger *slog.Logger
}

func (o *Options) fill() error {
	if o.AppDir == "" || o.Exec == "" {
		return errors.New("chaos: Options.AppDir and Options.Exec are required")
	}
	if o.Files < 0 || o.Kills < 0 || o.Profiles < 0 {
		return fmt.Errorf("chaos: Files %d, Kills %d and Profiles %d must not be negative", o.Files, o.Kills, o.Profiles)
	}
	if len(o.Faults) == 0 {
		o.Faults = AllFaults
	}
	for _, f := range o.Faults {
		if !slices.Contains(AllFaults, f) {
			return fmt.Errorf("chaos: unknown fault %q (want one of %v)", f, AllFaults)
		}
	}
	if o.MinDuration <= 0 {
		o.MinDuration = time.Second
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = 2 * time.Second
	}
	if o.PoisonLong == 0 {
		o.PoisonLong = -1
	}
	if o.MaxInputBytes <= 0 {
		// Above the 20-minute poison clip (~4.5 MB), small enough that
		// the at-cap and cap+1 cases upload quickly.
		o.MaxInputBytes = 8 << 20
	}
	if o.Slots <= 0 {
		o.Slots = 2
	}
	if o.MaxRestartDelay <= 0 {
		o.MaxRestartDelay = 3 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 20 * time.Minute
	}
	if o.QuietPeriod <= 0 {
		o.QuietPeriod = 4 * time.Minute
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(os.TempDir(), "ffpipe-chaos-media")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Timing knobs of the stack under test (short, so a run recovers within
// minutes; see the drain bound in docs/reliability.md#invariants).
const (
	lockDuration    = 10 * time.Second
	dupWindow       = 30 * time.Second
	reconcileAfter  = 30 * time.Second
	taskMaxRetries  = 2
	outputExt       = "mp3"
	replayFraction  = 0.1
	uploadParallel  = 4
	opRetryDeadline = 90 * time.Second
)

// Report is the outcome of a run; it marshals to the JSON of `ffpipe chaos --json`.
type Report struct {
	Files  int    `json:"files"`
	Poison int    `json:"poison"`
	Rows   int    `json:"rows"`
	Kills  int    `json:"kills"`
	Seed   uint64 `json:"seed"`
	Result
	// DrainSeconds runs from the last fault (the end of the fault window
	// when none was injected) until the ledger is resolved (docs/reliability.md#invariants);
	// DrainWaitSeconds is the time spent in the drain phase itself.
	DrainSeconds float64 `json:"drain_seconds"`
	// DrainEnd is how the drain ended: DrainResolved, DrainQuiescent or
	// DrainCap.
	DrainEnd         string         `json:"drain_end"`
	DrainWaitSeconds float64        `json:"drain_wait_seconds"`
	RunSeconds       float64        `json:"run_seconds"`
	KillsByComponent map[string]int `json:"kills_by_component"`
	Missed           map[string]int `json:"faults_missed"` // e.g. no ffmpeg running at that moment
	EventFaults      map[string]int `json:"event_faults"`  // delayed, duplicated, replayed
	// Executions maps "runs per input" to how many inputs ran that often.
	Executions    map[string]int `json:"executions"`
	ExecutionsMax int            `json:"executions_max"`
	// ExecutionsOverBound lists inputs that ran more often than
	// 1 + faults that could hit them + maxTaskRetryCount.
	ExecutionsOverBound []string         `json:"executions_over_bound,omitempty"`
	DLQByReason         map[string]int   `json:"dlq_by_reason"`
	RecoverySeconds     map[string]p5095 `json:"recovery_seconds"`
	SecretsInLogs       []string         `json:"secrets_in_logs"`
	SecurityChecks      []SecurityCheck  `json:"security_checks"`
	LogLines            int              `json:"log_lines_scanned"`
	Timeline            []FaultEvent     `json:"timeline"`
	Notes               []string         `json:"notes,omitempty"`
	Ledger              []Row            `json:"ledger,omitempty"`
	Dir                 string           `json:"dir,omitempty"`
}

// FaultEvent is one injected fault.
type FaultEvent struct {
	At     float64 `json:"at"` // seconds since the faults began
	Fault  string  `json:"fault"`
	Detail string  `json:"detail,omitempty"`
}

// p5095 are two percentiles in seconds.
type p5095 struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	N   int     `json:"n"`
}

// Failed reports whether any invariant was breached or a secret leaked.
func (r *Report) Failed() bool {
	return r.Breaches() > 0 || len(r.SecretsInLogs) > 0 || r.SecurityFailures() > 0
}

// SecurityFailures counts failed security checks.
func (r *Report) SecurityFailures() int {
	n := 0
	for _, c := range r.SecurityChecks {
		if !c.OK {
			n++
		}
	}
	return n
}

// Run executes one chaos run. The error is for a harness failure (the
// stack would not start, media could not be made); invariant breaches are
// in the Report (Failed).
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	start := time.Now()
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "ffpipe-chaos-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	if !opts.Keep {
		defer os.RemoveAll(dir)
	}
	h := &harness{opts: opts, dir: dir, log: opts.Logger,
		rng:    rand.New(rand.NewPCG(opts.Seed, 0xc4a05)),
		report: &Report{Files: opts.Files, Kills: opts.Kills, Seed: opts.Seed, KillsByComponent: map[string]int{}, Missed: map[string]int{}, EventFaults: map[string]int{}, Dir: dir},
		recov:  map[string][]time.Duration{},
	}
	if opts.Keep {
		h.report.Dir = dir
	}
	if err := h.prepareMedia(ctx); err != nil {
		return nil, err
	}
	if err := h.startStack(ctx); err != nil {
		return nil, err
	}
	defer h.close()
	if err := h.exercise(ctx); err != nil {
		return nil, err
	}
	if err := h.drain(ctx); err != nil {
		h.report.Notes = append(h.report.Notes, "drain: "+err.Error())
	}
	if err := h.observeAndCheck(ctx); err != nil {
		return nil, err
	}
	h.report.RunSeconds = time.Since(start).Seconds()
	return h.report, nil
}
