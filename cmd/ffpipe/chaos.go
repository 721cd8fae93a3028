package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/tooling/chaos"
)

func init() {
	commands = append(commands, command{
		name:    "chaos",
		summary: "fault-injection run with a ledger check (kill -9 of every component; nothing may be lost)",
		run:     runChaos,
	})
}

func runChaos(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	app := fs.String("app", "dist", "packaged function app (make package)")
	files := fs.Int("files", 40, "valid clips to convert (besides the poison set)")
	kills := fs.Int("kills", 10, "faults to inject at random times")
	seed := fs.Uint64("seed", 1, "seed for media, fault times and targets")
	jsonOut := fs.String("json", "", "write the report as JSON to this file")
	keep := fs.Bool("keep", false, "keep the run directory (media, stack state, component logs)")
	dir := fs.String("dir", "", "run directory (default: a temporary directory)")
	faults := fs.String("faults", strings.Join(chaos.AllFaults, ","), "comma-separated faults to draw from")
	slots := fs.Int("slots", 2, "Batch task slots")
	minDur := fs.Duration("min-duration", time.Second, "shortest valid clip")
	maxDur := fs.Duration("max-duration", 2*time.Second, "longest valid clip")
	long := fs.Duration("poison-long", 20*time.Minute, "length of the very-long poison clip (0: omit)")
	noPoison := fs.Bool("no-poison", false, "leave the poison set out")
	profiles := fs.Int("profiles", 0, "video clips uploaded with a media profile (web and hls in turn), every output verified")
	window := fs.Duration("fault-window", 0, "how long faults run (default: max(30s, 0.5s per input))")
	drain := fs.Duration("drain-timeout", 20*time.Minute, "cap of the drain: rows still in flight then are reported unfinished, apart from lost")
	quiet := fs.Duration("quiet-period", 4*time.Minute, "the drain also ends when nothing moved for this long (what is left is then lost)")
	level := fs.String("log-level", "warn", "harness log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("chaos: unexpected arguments %q", fs.Args())
	}
	log, err := newCLILogger(stderr, *level)
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	appDir, err := appDirOrHint(*app)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("chaos: find the ffpipe binary: %w", err)
	}
	opts := chaos.Options{
		AppDir: appDir, Exec: exe, Dir: *dir, Keep: *keep || *dir != "",
		Files: *files, Kills: *kills, Seed: *seed, Slots: *slots,
		MinDuration: *minDur, MaxDuration: *maxDur, NoPoison: *noPoison, Profiles: *profiles,
		FaultWindow: *window, DrainTimeout: *drain, QuietPeriod: *quiet, Logger: log,
	}
	if *long > 0 {
		opts.PoisonLong = *long
	}
	for _, f := range strings.Split(*faults, ",") {
		if f = strings.TrimSpace(f); f != "" {
			opts.Faults = append(opts.Faults, f)
		}
	}
	if opts.Dir != "" {
		if opts.Dir, err = filepath.Abs(opts.Dir); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "chaos: %d valid files + poison set, %d faults, seed %d (this takes a while)\n", *files, *kills, *seed)
	rep, err := chaos.Run(ctx, opts)
	if err != nil {
		return err
	}
	rep.WriteTable(stdout)
	if *jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("chaos: %w", err)
		}
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			return fmt.Errorf("chaos: %w", err)
		}
	}
	if rep.Failed() {
		return fmt.Errorf("chaos: %d invariant breaches, %d secrets in logs (seed %d)", rep.Breaches(), len(rep.SecretsInLogs), *seed)
	}
	return nil
}
