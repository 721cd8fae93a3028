package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/eventgrid"
)

func init() {
	commands = append(commands, command{
		name:    "emulator eventgrid",
		summary: "deliver BlobCreated events for Azurite containers to a webhook (local Event Grid)",
		run:     runEmulatorEventGrid,
	})
}

func runEmulatorEventGrid(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("emulator eventgrid", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conn := fs.String("storage", "UseDevelopmentStorage=true", "storage connection string (Azurite)")
	containers := fs.String("containers", "input", "comma-separated containers to watch")
	endpoint := fs.String("endpoint", "http://127.0.0.1:7071/runtime/webhooks/eventgrid?functionName=OnBlobCreated", "webhook URL")
	name := fs.String("subscription", "ffpipe-input", "subscription name")
	begins := fs.String("subject-begins-with", "", "subject filter prefix, e.g. /blobServices/default/containers/input/")
	ends := fs.String("subject-ends-with", "", "subject filter suffix, e.g. .mp4")
	schema := fs.String("schema", string(eventgrid.SchemaEventGrid), "EventGridSchema or CloudEventSchemaV1_0")
	data := fs.String("data", ".ffpipe/eventgrid", "directory for the cursor and dead letters (empty: memory only)")
	poll := fs.Duration("poll", 100*time.Millisecond, "listing interval")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("emulator eventgrid: --log-level %q: %w", *level, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	s := eventgrid.New(eventgrid.Options{
		ConnectionString: *conn,
		Containers:       strings.Split(*containers, ","),
		Subscriptions: []eventgrid.Subscription{{Name: *name, Endpoint: *endpoint, SubjectBeginsWith: *begins,
			SubjectEndsWith: *ends, Schema: eventgrid.Schema(*schema)}},
		DataDir:      *data,
		PollInterval: *poll,
		Logger:       log,
	})
	if err := s.Start(ctx); err != nil {
		return fmt.Errorf("emulator eventgrid: %w", err)
	}
	fmt.Fprintf(stdout, "Event Grid stand-in watching %s\n", *containers)
	<-ctx.Done()
	log.Info("shutting down", "stats", fmt.Sprintf("%+v", s.Stats()))
	if err := s.Close(); err != nil {
		return fmt.Errorf("emulator eventgrid: %w", err)
	}
	return ctx.Err()
}
