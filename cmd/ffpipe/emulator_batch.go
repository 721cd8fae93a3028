package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/batch"
)

func init() {
	commands = append(commands, command{
		name:    "emulator batch",
		summary: "run the local Azure Batch stand-in (REST, tasks as local processes)",
		run:     runEmulatorBatch,
	})
}

func runEmulatorBatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("emulator batch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8090", "TCP address to listen on")
	data := fs.String("data", ".ffpipe/batch", "directory for the state log and the node directories")
	inMemory := fs.Bool("in-memory", false, "keep state in memory only (lost on exit); node directories go to a temporary directory")
	token := fs.String("token", batch.DefaultToken, "bearer token clients must send (a development value, not a secret)")
	maxSlots := fs.Int("max-slots", runtime.NumCPU(), "task slots of all local nodes together")
	account := fs.String("account-name", "local", "account name for Shared Key requests (the Python azure-batch SDK)")
	key := fs.String("account-key", batch.DefaultAccountKey, "base64 account key for Shared Key requests (a development value, not a secret)")
	deletion := fs.Duration("deletion-delay", time.Second, "how long a deleted job or pool stays in state deleting")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	format := fs.String("log-format", "text", "log format: text or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("emulator batch: unexpected arguments %q", fs.Args())
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("emulator batch: --log-level %q: %w", *level, err)
	}
	if *maxSlots < 1 {
		return fmt.Errorf("emulator batch: --max-slots %d must be at least 1", *maxSlots)
	}
	if *inMemory {
		*data = ""
	} else if *data == "" {
		return fmt.Errorf("emulator batch: --data is empty; use --in-memory for a stand-in without a state log")
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(stderr, hopts)
	switch *format {
	case "text":
	case "json":
		h = slog.NewJSONHandler(stderr, hopts)
	default:
		return fmt.Errorf("emulator batch: --log-format %q: want text or json", *format)
	}
	log := slog.New(h)
	// Tasks find programs (ffmpeg, sh) on this process's PATH.
	if *deletion <= 0 {
		*deletion = -1 // at once
	}
	s := batch.New(batch.Options{Addr: *listen, DataDir: *data, Token: *token, MaxSlots: *maxSlots, Logger: log,
		AccountName: *account, AccountKey: *key, DeletionDelay: *deletion,
		Env: []string{"PATH=" + os.Getenv("PATH")}})
	if err := s.Start(ctx); err != nil {
		return fmt.Errorf("emulator batch: %w", err)
	}
	fmt.Fprintf(stdout, "Batch emulator on %s\nFFPIPE_BATCH_ENDPOINT=%s\n", s.URL(), s.URL())
	if *token == batch.DefaultToken {
		fmt.Fprintf(stdout, "FFPIPE_BATCH_TOKEN=%s\n", batch.DefaultToken)
	}
	if *key == batch.DefaultAccountKey {
		fmt.Fprintf(stdout, "Shared Key: account %s, key %s\n", *account, batch.DefaultAccountKey)
	}
	<-ctx.Done()
	log.Info("shutting down")
	if err := s.Close(); err != nil {
		return fmt.Errorf("emulator batch: %w", err)
	}
	return ctx.Err()
}
