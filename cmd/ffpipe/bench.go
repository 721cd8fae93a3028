package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/tooling/bench"
)

func init() {
	commands = append(commands, command{
		name:    "bench",
		summary: "measure throughput, latency, dispatch rate, memory, a node's own overhead and Sweep's rate on the local stack against the targets (make bench)",
		run:     runBench,
	})
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	app := fs.String("app", "dist", "packaged function app (make package)")
	quick := fs.Bool("quick", false, "quick mode: 4 clips of 20 s, 5 latency files, 2,000 dispatch messages and stand-in operations")
	files := fs.Int("files", 0, "throughput clips (default 32; quick 4)")
	clip := fs.Duration("clip-duration", 0, "length of every clip (default 2m; quick 20s)")
	latency := fs.Int("latency-files", 0, "files sent one at a time (default 20; quick 5)")
	dispatch := fs.Int("dispatch-messages", 0, "request messages for the dispatch phase (default 20000; quick 2000)")
	standin := fs.Int("standin-ops", 0, "messages and tasks for the stand-ins alone (default 20000; quick 2000)")
	seed := fs.Uint64("seed", 1, "seed of the generated clips")
	cache := fs.String("cache", ".ffpipe/cache", "cache of generated clips")
	preset := fs.String("preset", "", "preset every task runs (default mp3)")
	slots := fs.Int("slots", 0, "baseline processes, xargs -P (default: cores)")
	taskSlots := fs.Int("task-slots", 0, "task slots of the local pool, taskSlotsPerNode (default: --slots)")
	nodeRounds := fs.Int("node-rounds", 3, "interleaved baseline/pipeline rounds per slot count in the node phase")
	videoFiles := fs.Int("video-files", 0, "clips the node phase's video study (web profile) runs (default 4; quick 2; -1 none)")
	sweepTasks := fs.Int("sweep-tasks", 0, "completed tasks the sweep phase settles (default 1000; quick 300)")
	sweepInMemory := fs.Bool("sweep-azurite-in-memory", false, "run the sweep phase's Azurite with its data in memory (--inMemoryPersistence) instead of on disk")
	statusRecords := fs.Int("status-records", 0, "records the status phase seeds (default 100000; quick 5000)")
	phases := fs.String("phases", "", "comma list of phases: "+strings.Join(bench.AllPhases(), ",")+" (default all)")
	settings := map[string]string{}
	fs.Func("set", "NAME=VALUE app setting for every stack (repeatable), e.g. AzureFunctionsJobHost__extensions__serviceBus__maxMessageBatchSize=1000", func(v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return fmt.Errorf("want NAME=VALUE, got %q", v)
		}
		settings[k] = val
		return nil
	})
	jsonOut := fs.String("json", "", "write the result as JSON to this file")
	pngOut := fs.String("png", "", "write the chart to this PNG file")
	keep := fs.Bool("keep", false, "keep the stacks' state directory")
	timeout := fs.Duration("timeout", 60*time.Minute, "give up after this long")
	cpuProfile := fs.String("cpuprofile", "", "write a pprof CPU profile of this process over the throughput window to this file (and over the dispatch window to this file + \".dispatch\")")
	level := fs.String("log-level", "warn", "log level of the local stacks: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	log, err := newCLILogger(stderr, *level)
	if err != nil {
		return err
	}
	appDir, err := appDirOrHint(*app)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	opts := bench.Options{
		Exec: exe, NodeRounds: *nodeRounds, SweepTasks: *sweepTasks, SweepAzuriteInMemory: *sweepInMemory, VideoFiles: *videoFiles, StatusRecords: *statusRecords,
		AppDir: appDir, Keep: *keep, CacheDir: *cache, Seed: *seed,
		Files: *files, ClipDuration: *clip, LatencyFiles: *latency, DispatchMessages: *dispatch,
		StandinMessages: *standin, StandinTasks: *standin, Preset: *preset, Slots: *slots, TaskSlots: *taskSlots,
		Settings: settings, Logger: log, Progress: stdout, CPUProfile: *cpuProfile,
	}
	if *phases != "" {
		for _, p := range strings.Split(*phases, ",") {
			opts.Phases = append(opts.Phases, strings.TrimSpace(p))
		}
	}
	if *quick {
		opts = opts.QuickMode()
	}
	res, runErr := bench.Run(ctx, opts)
	fmt.Fprintln(stdout)
	if err := res.WriteTable(stdout); err != nil {
		return err
	}
	if *jsonOut != "" {
		var b bytes.Buffer
		if err := res.WriteJSON(&b); err != nil {
			return err
		}
		if err := os.WriteFile(*jsonOut, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("bench: write %s: %w", *jsonOut, err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", *jsonOut)
	}
	if *pngOut != "" {
		if err := res.WriteChart(*pngOut); err != nil {
			return fmt.Errorf("bench: write %s: %w", *pngOut, err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", *pngOut)
	}
	return runErr
}
