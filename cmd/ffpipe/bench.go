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
	opts := bench.Options{Settings: map[string]string{}}
	var cli benchCLI
	fs := benchFlagSet(stderr, &opts, &cli)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cli.timeout)
	defer cancel()
	log, err := newCLILogger(stderr, cli.level)
	if err != nil {
		return err
	}
	appDir, err := appDirOrHint(cli.app)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	opts.Exec, opts.AppDir, opts.Logger, opts.Progress = exe, appDir, log, stdout
	opts.StandinTasks = opts.StandinMessages
	if cli.phases != "" {
		for _, p := range strings.Split(cli.phases, ",") {
			opts.Phases = append(opts.Phases, strings.TrimSpace(p))
		}
	}
	if cli.quick {
		opts = opts.QuickMode()
	}
	res, runErr := bench.Run(ctx, opts)
	fmt.Fprintln(stdout)
	if err := writeBenchResult(stdout, res, cli.jsonOut, cli.pngOut); err != nil {
		return err
	}
	return runErr
}

// benchCLI are the flags of ffpipe bench that are not bench.Options
// fields.
type benchCLI struct {
	app, phases, jsonOut, pngOut, level string
	quick                               bool
	timeout                             time.Duration
}

// benchFlagSet defines ffpipe bench's flags, into opts where bench.Options
// has the field and into cli otherwise.
func benchFlagSet(stderr io.Writer, opts *bench.Options, cli *benchCLI) *flag.FlagSet {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cli.app, "app", "dist", "packaged function app (make package)")
	fs.BoolVar(&cli.quick, "quick", false, "quick mode: 4 clips of 20 s, 5 latency files, 2,000 dispatch messages and stand-in operations")
	fs.IntVar(&opts.Files, "files", 0, "throughput clips (default 32; quick 4)")
	fs.DurationVar(&opts.ClipDuration, "clip-duration", 0, "length of every clip (default 2m; quick 20s)")
	fs.IntVar(&opts.LatencyFiles, "latency-files", 0, "files sent one at a time (default 20; quick 5)")
	fs.IntVar(&opts.DispatchMessages, "dispatch-messages", 0, "request messages for the dispatch phase (default 20000; quick 2000)")
	fs.IntVar(&opts.StandinMessages, "standin-ops", 0, "messages and tasks for the stand-ins alone (default 20000; quick 2000)")
	fs.Uint64Var(&opts.Seed, "seed", 1, "seed of the generated clips")
	fs.StringVar(&opts.CacheDir, "cache", ".ffpipe/cache", "cache of generated clips")
	fs.StringVar(&opts.Preset, "preset", "", "preset every task runs (default mp3)")
	fs.IntVar(&opts.Slots, "slots", 0, "baseline processes, xargs -P (default: cores)")
	fs.IntVar(&opts.TaskSlots, "task-slots", 0, "task slots of the local pool, taskSlotsPerNode (default: --slots)")
	fs.IntVar(&opts.NodeRounds, "node-rounds", 3, "interleaved baseline/pipeline rounds per slot count in the node phase")
	fs.IntVar(&opts.VideoFiles, "video-files", 0, "clips the node phase's video study (web profile) runs (default 4; quick 2; -1 none)")
	fs.IntVar(&opts.SweepTasks, "sweep-tasks", 0, "completed tasks the sweep phase settles (default 1000; quick 300)")
	fs.BoolVar(&opts.SweepAzuriteInMemory, "sweep-azurite-in-memory", false, "run the sweep phase's Azurite with its data in memory (--inMemoryPersistence) instead of on disk")
	fs.IntVar(&opts.StatusRecords, "status-records", 0, "records the status phase seeds (default 100000; quick 5000)")
	fs.StringVar(&cli.phases, "phases", "", "comma list of phases: "+strings.Join(bench.AllPhases(), ",")+" (default all)")
	fs.Func("set", "NAME=VALUE app setting for every stack (repeatable), e.g. AzureFunctionsJobHost__extensions__serviceBus__maxMessageBatchSize=1000", func(v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return fmt.Errorf("want NAME=VALUE, got %q", v)
		}
		opts.Settings[k] = val
		return nil
	})
	fs.StringVar(&cli.jsonOut, "json", "", "write the result as JSON to this file")
	fs.StringVar(&cli.pngOut, "png", "", "write the chart to this PNG file")
	fs.BoolVar(&opts.Keep, "keep", false, "keep the stacks' state directory")
	fs.DurationVar(&cli.timeout, "timeout", 60*time.Minute, "give up after this long")
	fs.StringVar(&opts.CPUProfile, "cpuprofile", "", "write a pprof CPU profile of this process over the throughput window to this file (and over the dispatch window to this file + \".dispatch\")")
	fs.StringVar(&cli.level, "log-level", "warn", "log level of the local stacks: debug, info, warn, error")
	return fs
}

// writeBenchResult prints res's table to stdout and writes the JSON and
// the chart where asked.
func writeBenchResult(stdout io.Writer, res bench.Result, jsonOut, pngOut string) error {
	if err := res.WriteTable(stdout); err != nil {
		return err
	}
	if jsonOut != "" {
		var b bytes.Buffer
		if err := res.WriteJSON(&b); err != nil {
			return err
		}
		if err := os.WriteFile(jsonOut, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("bench: write %s: %w", jsonOut, err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", jsonOut)
	}
	if pngOut != "" {
		if err := res.WriteChart(pngOut); err != nil {
			return fmt.Errorf("bench: write %s: %w", pngOut, err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", pngOut)
	}
	return nil
}
