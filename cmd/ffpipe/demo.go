package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ffpipe/ffpipe/internal/tooling/media"
	"github.com/ffpipe/ffpipe/internal/tooling/runner"
	"github.com/ffpipe/ffpipe/internal/tooling/stack"
)

func init() {
	commands = append(commands, command{
		name:    "demo",
		summary: "run the pipeline end to end on generated MP4s and check every output (make run)",
		run:     runDemo,
	})
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	app := fs.String("app", "dist", "packaged function app (make package)")
	files := fs.Int("files", 8, "how many sample MP4s to generate")
	duration := fs.Duration("duration", 20*time.Second, "longest sample; lengths vary between half of it and it")
	seed := fs.Uint64("seed", 1, "seed for the sample lengths")
	keep := fs.Bool("keep", false, "keep the stack's state directory")
	timeout := fs.Duration("timeout", 15*time.Minute, "give up after this long")
	level := fs.String("log-level", "warn", "log level of the local stack: debug, info, warn, error")
	profiles := fs.Bool("profiles", true, "also convert a 720p clip with the hls profile and one with web, and verify every output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *files < 1 || *duration < time.Second {
		return fmt.Errorf("demo: --files must be ≥ 1 and --duration ≥ 1s")
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
	dir, err := os.MkdirTemp("", "ffpipe-demo-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintf(stdout, "state kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	fmt.Fprintf(stdout, "generating %d sample MP4s (video + stereo audio, %s–%s)…\n", *files, *duration/2, *duration)
	clips, err := media.GenerateSet(ctx, filepath.Join(dir, "samples"), *files, *seed, media.SetOptions{
		MinDuration: *duration / 2, MaxDuration: *duration, Prefix: "sample-",
	})
	if err != nil {
		return fmt.Errorf("demo: generate samples: %w", err)
	}

	fmt.Fprintln(stdout, "starting the local stack (Azurite, Service Bus, Batch, Event Grid, Functions host)…")
	t0 := time.Now()
	s, err := stack.Start(ctx, stack.Options{Dir: filepath.Join(dir, "stack"), AppDir: appDir, Logger: log})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer s.Close()
	fmt.Fprintf(stdout, "stack up in %.1fs; uploading to the input container…\n", time.Since(t0).Seconds())

	in := make([]runner.File, len(clips))
	for i, c := range clips {
		in[i] = runner.File{Path: c.Path, AudioDuration: c.Spec.Duration}
	}
	rep, err := runWithBars(ctx, s, runner.Options{Files: in, Prefix: "demo/", Verify: true}, stdout)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintln(stdout)
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	if n := rep.Failed(); n > 0 {
		return fmt.Errorf("demo: %d of %d files did not produce a valid output", n, len(rep.Results))
	}
	fmt.Fprintln(stdout, "all outputs verified with ffprobe (mp3, duration within 0.1 s); inputs deleted, tasks removed.")
	if *profiles {
		return demoProfiles(ctx, s, filepath.Join(dir, "profiles"), stdout)
	}
	return nil
}

// demoProfiles uploads two 720p clips, one with `--profile hls` and one
// with `--profile web` (the ffpipe_profile metadata), then downloads and
// verifies every output here and prints them: rungs, heights, durations.
func demoProfiles(ctx context.Context, s *stack.Stack, dir string, stdout io.Writer) error {
	fmt.Fprintln(stdout, "\nprofiles: a 720p clip with --profile hls (ladder 360p/540p/720p/1080p: no 1080p from a 720p source) and one with --profile web…")
	var in []runner.File
	for _, c := range []struct {
		name, profile string
		secs          int
	}{{"hls-720p.mp4", "hls", 8}, {"web-720p.mp4", "web", 4}} {
		p, err := media.Generate(ctx, dir, media.ClipSpec{Name: c.name, Width: 1280, Height: 720, FPS: 25, Duration: time.Duration(c.secs) * time.Second})
		if err != nil {
			return fmt.Errorf("demo: generate %s: %w", c.name, err)
		}
		in = append(in, runner.File{Path: p, AudioDuration: time.Duration(c.secs) * time.Second, Profile: c.profile})
	}
	rep, err := runWithBars(ctx, s, runner.Options{Files: in, Prefix: "demo/profiles/", Verify: true}, stdout)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintln(stdout)
	if err := rep.WriteOutputs(stdout); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	for _, r := range rep.Results {
		if !r.OK() {
			return fmt.Errorf("demo: %s (%s): %s %s %v", r.Blob, r.Profile, r.State, r.Reason, r.Verify)
		}
	}
	fmt.Fprintln(stdout, "every output verified here with ffprobe and a full decode (heights, durations within 0.5 s, HLS segments present); inputs deleted.")
	return nil
}

// runWithBars runs the files through the stack with a progress bar per
// running file (read from the tasks' progress files through Batch); the
// runner's lines print above the bars. When stdout is not a terminal,
// logProgress's plain lines replace the bars.
func runWithBars(ctx context.Context, s *stack.Stack, o runner.Options, stdout io.Writer) (runner.Report, error) {
	bc, err := s.BatchClient()
	if err != nil {
		return runner.Report{}, err
	}
	cfg, err := s.Config()
	if err != nil {
		return runner.Report{}, err
	}
	wctx, stop := context.WithCancel(ctx)
	if !isTerminal(stdout) {
		// A pipe or a log: a line per file's start, quarter and end.
		lw := &lineWriter{w: stdout}
		done := make(chan struct{})
		go func() {
			defer close(done)
			logProgress(wctx, bc, cfg.BatchJob, lw, time.Second)
		}()
		o.Progress = lw
		rep, err := runner.Run(ctx, s, o)
		stop()
		<-done
		return rep, err
	}
	bars := newBars(wctx, stdout, 500*time.Millisecond)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = drawProgress(wctx, bc, cfg.BatchJob, bars, 500*time.Millisecond, false)
	}()
	o.Progress = bars
	rep, err := runner.Run(ctx, s, o)
	stop() // the watcher shuts the bars down
	<-done
	return rep, err
}
