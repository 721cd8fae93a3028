// Package bench measures the local pipeline against issue 8's targets:
// throughput against an `xargs -P cores ffmpeg` baseline, per-file latency
// and its overhead over ffmpeg, the Dispatch rate into a zero-node pool,
// the handler's peak memory, and the Service Bus and Batch stand-ins on
// their own. `ffpipe bench` (make bench) runs it and writes a table, JSON
// and a PNG chart.
//
// Every phase runs on a fresh local stack (internal/tooling/stack) with
// the packaged function app, so the figures include the real handler
// process, the real Functions-host protocol, Azurite and the stand-ins'
// durability (fsync before ack). Inputs are generated clips, cached by
// spec, so repeated runs with the same seed reuse the same bytes.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/presets"
	"github.com/ffpipe/ffpipe/internal/tooling/media"
)

// Phase names (Options.Phases).
const (
	PhaseThroughput = "throughput" // also runs latency's stack warm-up
	PhaseLatency    = "latency"
	PhaseDispatch   = "dispatch"
	PhaseStandins   = "standins"
	PhaseNode       = "node"   // node/cloud split: node_throughput_ratio and the slot study
	PhaseSweep      = "sweep"  // Sweep's settle rate
	PhaseStatus     = "status" // Status over many records (statusphase.go)
)

// AllPhases in run order.
func AllPhases() []string {
	return []string{PhaseThroughput, PhaseLatency, PhaseDispatch, PhaseStandins, PhaseNode, PhaseSweep, PhaseStatus}
}

// Options configure Run. Zero values take the defaults of a full run.
type Options struct {
	// AppDir is the packaged function app (dist/). Required.
	AppDir string
	// WorkDir holds the stacks' state (removed unless Keep). Default: a
	// temporary directory.
	WorkDir string
	Keep    bool
	// CacheDir keeps generated clips between runs. Default .ffpipe/cache.
	CacheDir string
	// Seed makes the inputs reproducible. Default 1.
	Seed uint64
	// Files and ClipDuration of the throughput set. Defaults 32 and 2 min.
	Files        int
	ClipDuration time.Duration
	// Width and Height of the clips. Default 640×360.
	Width, Height int
	// LatencyFiles go through one at a time. Default 20.
	LatencyFiles int
	// DispatchMessages for the dispatch phase. Default 20,000.
	DispatchMessages int
	// StandinMessages and StandinTasks for the stand-ins alone. Default
	// 20,000 each.
	StandinMessages, StandinTasks int
	// Exec is the ffpipe binary: the node phase runs the Batch stand-in as
	// its own process (`ffpipe emulator batch`) on the node cores.
	Exec string
	// NodeRounds is how many interleaved baseline/pipeline rounds the node
	// phase runs per slot count. Default 3.
	NodeRounds int
	// VideoFiles is how many of the clips the node phase's video study
	// (the web profile) runs. Default 4 (quick 2).
	VideoFiles int
	// SweepTasks is the number of completed tasks the sweep phase settles.
	// Default 1,000 (quick 300): each file leaves five blobs in Azurite,
	// whose every request scans the account's blobs, so 5,000 files
	// measure Azurite's slowdown (~4 files/s at 25,000 blobs), not Sweep.
	SweepTasks int
	// SweepAzuriteInMemory runs the sweep phase's Azurite with its data in
	// memory (azurite.Options.InMemory) instead of on disk: a comparison
	// of the two, docs/performance.md (Sweep).
	SweepAzuriteInMemory bool
	// StatusRecords is the number of records the status phase seeds.
	// Default 100,000 (quick 5,000).
	StatusRecords int
	// Preset is the preset every task runs. Default presets.DefaultName.
	Preset string
	// Slots is the number of baseline processes (xargs -P). Default: cores.
	Slots int
	// TaskSlots is the local pool's task slots (taskSlotsPerNode of the one
	// node). Default: Slots, as the local stack has it (slots = cores),
	// because here Azurite shares the task cores. (An Azure pool gets 2
	// per vCPU, from the node phase's slot study, which sets its own
	// slots per round: storage is off a node's cores.) More slots than
	// cores overlap a task's download with another's encoding, but since the dispatch
	// rework the stack's own CPU fills those gaps and 4 ffmpeg processes
	// on 2 cores pay for the contention: on 32 two-minute clips (2026-11-21)
	// 2 slots gave ratios 1.154–1.198 (mean 1.166, 6 runs) and 4 slots
	// 1.157–1.262 (mean 1.212, 5 runs), with 0.3–1.2 s more ffmpeg CPU.
	TaskSlots int
	// Settings add or override app settings of every stack (knob studies,
	// e.g. AzureFunctionsJobHost__extensions__serviceBus__maxMessageBatchSize).
	Settings map[string]string
	// Phases to run (default all).
	Phases []string
	// CPUProfile, if set, receives a pprof CPU profile of this process (the
	// in-process stand-ins, host and bench) over the throughput window,
	// and one over the dispatch window into CPUProfile + ".dispatch".
	CPUProfile string
	// Quick marks the result as a quick run (set by QuickOptions).
	Quick bool
	// Logger receives the stacks' logs. Default: discard.
	Logger *slog.Logger
	// Progress receives one line per step. Default: discard.
	Progress io.Writer
}

// QuickMode turns o into the quick mode: 4 clips of 20 s, 5 latency files,
// 2,000 dispatch messages and 2,000 messages/tasks for the stand-ins.
// Fields already set are kept.
func (o Options) QuickMode() Options {
	o.Quick = true
	if o.Files == 0 {
		o.Files = 4
	}
	if o.ClipDuration == 0 {
		o.ClipDuration = 20 * time.Second
	}
	if o.LatencyFiles == 0 {
		o.LatencyFiles = 5
	}
	if o.DispatchMessages == 0 {
		o.DispatchMessages = 2000
	}
	if o.StandinMessages == 0 {
		o.StandinMessages = 2000
	}
	if o.StandinTasks == 0 {
		o.StandinTasks = 2000
	}
	if o.StatusRecords == 0 {
		o.StatusRecords = 5000
	}
	if o.SweepTasks == 0 {
		o.SweepTasks = 300
	}
	if o.VideoFiles == 0 {
		o.VideoFiles = 2
	}
	return o
}

func (o Options) withDefaults() Options {
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(".ffpipe", "cache")
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Files <= 0 {
		o.Files = 32
	}
	if o.ClipDuration <= 0 {
		o.ClipDuration = 2 * time.Minute
	}
	if o.Width <= 0 || o.Height <= 0 {
		o.Width, o.Height = 640, 360
	}
	if o.LatencyFiles <= 0 {
		o.LatencyFiles = 20
	}
	if o.DispatchMessages <= 0 {
		o.DispatchMessages = 20000
	}
	if o.StandinMessages <= 0 {
		o.StandinMessages = 20000
	}
	if o.StandinTasks <= 0 {
		o.StandinTasks = 20000
	}
	if o.Preset == "" {
		o.Preset = presets.DefaultName
	}
	if o.NodeRounds <= 0 {
		o.NodeRounds = 3
	}
	if o.StatusRecords <= 0 {
		o.StatusRecords = 100000
	}
	if o.SweepTasks <= 0 {
		o.SweepTasks = 1000
	}
	if o.VideoFiles == 0 {
		o.VideoFiles = 4
	}
	if o.Slots <= 0 {
		o.Slots = runtime.NumCPU()
	}
	if o.TaskSlots <= 0 {
		o.TaskSlots = o.Slots
	}
	if len(o.Phases) == 0 {
		o.Phases = AllPhases()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o
}

func (o Options) validate() error {
	if o.AppDir == "" {
		return errors.New("bench: AppDir is required")
	}
	for _, p := range o.Phases {
		if !slices.Contains(AllPhases(), p) {
			return fmt.Errorf("bench: unknown phase %q (have %s)", p, strings.Join(AllPhases(), ", "))
		}
	}
	if o.Width%2 != 0 || o.Height%2 != 0 {
		return fmt.Errorf("bench: clip size %dx%d must be even", o.Width, o.Height)
	}
	if _, ok := presets.Default().Get(o.Preset); !ok {
		return fmt.Errorf("bench: unknown preset %q", o.Preset)
	}
	return nil
}

// runner carries one run's state between phases.
type runner struct {
	o      Options
	res    *Result
	preset presets.Preset
	clips  []media.Clip
}

func (r *runner) progress(format string, args ...any) {
	fmt.Fprintf(r.o.Progress, "%s %s\n", time.Now().Format("15:04:05.0"), fmt.Sprintf(format, args...))
}

// Run runs the phases in order and returns the result with its targets
// evaluated. A phase that fails stops the run and returns the partial
// result with the error.
func Run(ctx context.Context, opts Options) (Result, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return Result{}, err
	}
	if o.WorkDir == "" {
		dir, err := os.MkdirTemp("", "ffpipe-bench-")
		if err != nil {
			return Result{}, fmt.Errorf("bench: %w", err)
		}
		o.WorkDir = dir
		if !o.Keep {
			defer os.RemoveAll(dir)
		}
	}
	p, _ := presets.Default().Get(o.Preset)
	res := &Result{
		Date:    time.Now().UTC().Truncate(time.Second),
		Machine: machine(ctx),
		Config: Config{
			Quick: o.Quick, Seed: o.Seed, Preset: o.Preset, Files: o.Files,
			ClipSeconds: o.ClipDuration.Seconds(), Width: o.Width, Height: o.Height,
			LatencyFiles: o.LatencyFiles, DispatchMessages: o.DispatchMessages,
			StandinMessages: o.StandinMessages, StandinTasks: o.StandinTasks,
			Slots: o.Slots, TaskSlots: o.TaskSlots, Phases: o.Phases, Settings: o.Settings,
			NodeRounds: o.NodeRounds, SweepTasks: o.SweepTasks, SweepAzuriteInMemory: o.SweepAzuriteInMemory, StatusRecords: o.StatusRecords,
		},
	}
	res.Machine.LoadStart = loadAverage()
	r := &runner{o: o, res: res, preset: p}
	for _, ph := range AllPhases() {
		if !slices.Contains(o.Phases, ph) {
			res.Skipped = append(res.Skipped, ph)
			continue
		}
		var err error
		switch ph {
		case PhaseThroughput:
			err = r.throughputAndLatency(ctx)
		case PhaseLatency:
			if !slices.Contains(o.Phases, PhaseThroughput) {
				err = r.latencyOnly(ctx)
			}
		case PhaseDispatch:
			err = r.dispatch(ctx)
		case PhaseStandins:
			err = r.standins(ctx)
		case PhaseNode:
			err = r.nodePhase(ctx)
		case PhaseSweep:
			err = r.sweepPhase(ctx)
		case PhaseStatus:
			err = r.statusPhase(ctx)
		}
		if err != nil {
			res.finish()
			return *res, fmt.Errorf("bench %s: %w", ph, err)
		}
	}
	res.finish()
	return *res, nil
}

// finish derives the summary figures and evaluates the targets.
func (r *Result) finish() {
	r.Machine.LoadEnd = loadAverage()
	r.HandlerPeakRSSMB = max(r.HandlerRSSThroughputMB, r.HandlerRSSDispatchMB)
	r.evaluateTargets()
}

// generate makes (or reuses from the cache) the throughput clips.
func (r *runner) generate(ctx context.Context) error {
	if r.clips != nil {
		return nil
	}
	r.progress("generating %d clips of %s (%dx%d, stereo), cache %s …", r.o.Files, r.o.ClipDuration, r.o.Width, r.o.Height, r.o.CacheDir)
	t0 := time.Now()
	clips, err := media.GenerateSet(ctx, filepath.Join(r.o.WorkDir, "clips"), r.o.Files, r.o.Seed, media.SetOptions{
		Base:        media.ClipSpec{Width: r.o.Width, Height: r.o.Height, CacheDir: r.o.CacheDir},
		MinDuration: r.o.ClipDuration, MaxDuration: r.o.ClipDuration,
		Prefix: fmt.Sprintf("bench-s%d-", r.o.Seed),
	})
	if err != nil {
		return err
	}
	r.clips = clips
	r.progress("clips ready in %.1fs", time.Since(t0).Seconds())
	return nil
}

// argv returns the preset's argv with the node-local names replaced by
// local paths: exactly what a task runs, on the same file.
func (r *runner) argv(in, out string) []string {
	argv := slices.Clone(r.preset.Argv())
	for i, a := range argv {
		switch a {
		case presets.InputFile:
			argv[i] = in
		case r.preset.OutputFile():
			argv[i] = out + "." + r.preset.Ext
		case presets.ProgressFile:
			// Beside the output, not in the bench's working directory.
			argv[i] = out + ".progress.txt"
		}
	}
	return argv
}

// machine describes this host.
func machine(ctx context.Context) Machine {
	m := Machine{Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		for _, line := range strings.Split(string(b), "\n") {
			if _, err := fmt.Sscanf(line, "MemTotal: %f kB", &kb); err == nil {
				m.MemoryGiB = round(kb/(1<<20), 1)
				break
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "ffmpeg", "-version").Output(); err == nil {
		m.FFmpeg, _, _ = strings.Cut(string(out), "\n")
		m.FFmpeg = strings.TrimSpace(strings.TrimPrefix(strings.SplitN(m.FFmpeg, " Copyright", 2)[0], "ffmpeg version "))
	}
	return m
}
