package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"github.com/ffpipe/ffpipe/internal/tooling/stack"
)

func init() {
	commands = append(commands, command{
		name:    "dev",
		summary: "run the whole local stack (Azurite, Service Bus, Batch, Event Grid, Functions host) until Ctrl-C",
		run:     runDev,
	})
}

// defaultStackInfo is where `ffpipe dev` tells the clients how to reach it.
const defaultStackInfo = ".ffpipe/stack.json"

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	app := fs.String("app", "dist", "packaged function app (make package)")
	data := fs.String("data", ".ffpipe/dev", "state directory; kept across restarts")
	info := fs.String("info", defaultStackInfo, "where to write endpoints and connection strings for upload/submit/status")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	sbPort := fs.Int("servicebus-port", 5672, "Service Bus (AMQP) port")
	sbTLSPort := fs.Int("servicebus-tls-port", 5671, "Service Bus AMQPS (TLS) port; 0 = no TLS listener")
	batchPort := fs.Int("batch-port", 8090, "Batch REST port")
	azPort := fs.Int("azurite-port", 10000, "Azurite blob port")
	hostPort := fs.Int("host-port", 7071, "Functions host port")
	slots := fs.Int("slots", 0, "local Batch task slots (default: cores)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newCLILogger(stderr, *level)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(*data)
	if err != nil {
		return err
	}
	appDir, err := appDirOrHint(*app)
	if err != nil {
		return err
	}
	s, err := stack.Start(ctx, stack.Options{
		Dir: dir, AppDir: appDir, Slots: *slots, Logger: log, ServiceBusTLSPort: *sbTLSPort,
		Ports: stack.Ports{Azurite: *azPort, ServiceBus: *sbPort, Batch: *batchPort, Host: *hostPort},
	})
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.WriteInfo(*info); err != nil {
		return err
	}
	printStack(stdout, s, *info, dir)
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nstopping the local stack…")
	return nil
}

func printStack(w io.Writer, s *stack.Stack, info, dir string) {
	in := s.Info()
	fmt.Fprintln(w, "ffpipe local stack is up.")
	names := make([]string, 0, len(in.Components))
	for k := range in.Components {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(w, "  %-11s %s\n", k, in.Components[k])
	}
	fmt.Fprintf(w, "  %-11s %s/api/status?code=%s\n", "status", in.HostURL, in.MasterKey)
	fmt.Fprintf(w, "\nconnection strings (local, throw-away):\n  DataStorage=%s\n  ServiceBusConnection=%s\n  FFPIPE_BATCH_TOKEN=%s\n",
		in.Settings["DataStorage"], in.Settings["ServiceBusConnection"], in.Settings["FFPIPE_BATCH_TOKEN"])
	if in.ServiceBusTLS != "" {
		fmt.Fprintf(w, "\nService Bus over TLS (AMQPS; clients trust the certificate, e.g. SSL_CERT_FILE for Python):\n  %s\n  certificate: %s\n",
			in.ServiceBusTLS, in.ServiceBusCert)
	}
	fmt.Fprintf(w, "\nstate in %s; clients read %s\ntry: ffpipe upload my.mp4 · ffpipe status · Ctrl-C to stop\n", dir, info)
}

func newCLILogger(w io.Writer, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})), nil
}

// appDirOrHint checks that dir is a packaged function app.
func appDirOrHint(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(abs, "host.json")); err != nil {
		return "", fmt.Errorf("%s is not a packaged function app (no host.json): run `make package` first", dir)
	}
	return abs, nil
}
