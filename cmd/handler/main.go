// Command handler is the Azure Functions custom handler: the executable
// host.json points at. It reads its configuration from the environment
// (the app settings), connects to Storage, Service Bus and Batch, and serves
// the custom-handler protocol on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT
// until SIGTERM. The Functions host never sends SIGTERM: it stops and
// restarts the handler with SIGKILL (docs/localhost.md), so no state may
// wait for the drain here; an invocation cut short fails, and the host
// redelivers its messages or events.
//
// Locally it runs the same way against the stand-ins (connection strings
// and FFPIPE_BATCH_TOKEN instead of identities); see docs/functions.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ffpipe/ffpipe/handlers"
	"github.com/ffpipe/ffpipe/internal/clients"
	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/presets"
	"github.com/ffpipe/ffpipe/internal/secret"
	"github.com/ffpipe/ffpipe/internal/storage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.LookupEnv, os.Stdout, nil); err != nil && !errors.Is(err, context.Canceled) {
		// stderr: the host logs these lines as errors.
		fmt.Fprintln(os.Stderr, "handler:", secret.Redact(err.Error()))
		os.Exit(1)
	}
}

// run loads the configuration, wires the clients and serves until ctx
// ends. Logs go to stdout (the host logs stderr lines as errors). ready, if
// not nil, receives the listening address.
func run(ctx context.Context, lookup func(string) (string, bool), stdout io.Writer, ready chan<- net.Addr) error {
	cfg, err := config.Load(lookup)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := config.NewLogger(cfg, stdout)
	port, ok := lookup("FUNCTIONS_CUSTOMHANDLER_PORT")
	if !ok || port == "" {
		port, ok = lookup("FUNCTIONS_HTTPWORKER_PORT")
	}
	if !ok || port == "" {
		return errors.New("FUNCTIONS_CUSTOMHANDLER_PORT is not set (the Functions host sets it)")
	}
	deps, closeAll, err := wire(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeAll()
	if err := handlers.Check(cfg, deps); err != nil {
		return err
	}
	l, err := listen(port)
	if err != nil {
		return err
	}
	if ready != nil {
		ready <- l.Addr()
	}
	log.Info("handler listening", "addr", l.Addr().String(), "account", cfg.StorageAccount(), "queue", cfg.Queue,
		"pool", cfg.BatchPool, "job", cfg.BatchJob, "local", cfg.Local())
	return serve(ctx, l, handlers.New(cfg, deps), log)
}

// listen binds the loopback interface only: the host always calls
// 127.0.0.1, and nothing else should reach the handler.
func listen(port string) (net.Listener, error) {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		return nil, fmt.Errorf("listen on 127.0.0.1:%s: %w", port, err)
	}
	return l, nil
}

func serve(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Let running invocations finish (the host grants a grace period).
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	<-errc
	log.Info("handler stopped")
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// wire builds the Azure clients: connection strings and a static Batch
// token locally, the managed identity in Azure.
func wire(ctx context.Context, cfg config.Config, log *slog.Logger) (handlers.Deps, func(), error) {
	set, err := clients.New(cfg, clients.Options{Logger: log})
	if err != nil {
		return handlers.Deps{}, nil, err
	}
	ps, err := presets.Load(cfg.Presets)
	if err != nil {
		return handlers.Deps{}, nil, fmt.Errorf("setting FFPIPE_PRESETS: %w", err)
	}
	profiles, err := presets.LoadProfiles(ps, cfg.Profiles)
	if err != nil {
		return handlers.Deps{}, nil, fmt.Errorf("setting FFPIPE_PROFILES: %w", err)
	}
	if cfg.Local() {
		// Azurite starts empty; in Azure the infrastructure creates them.
		ensureContainers(ctx, set.Blobs, cfg, log)
	}
	closeAll := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = set.Close(ctx)
	}
	var events handlers.Sender
	if set.Events != nil {
		events = set.Events // a nil *queue.Sender must not become a non-nil interface
	}
	return handlers.Deps{
		Log:       log,
		Queue:     set.Queue,
		Blobs:     set.Blobs,
		SAS:       set.Blobs,
		Records:   set.Records,
		Submitter: set.Batch,
		Sweeper:   set.Batch,
		Tasks:     set.Batch,
		Presets:   ps,
		Profiles:  profiles,
		Events:    events,
		Outbox:    set.Records.Index(),
		Spend:     set.Records.Index(),
	}, closeAll, nil
}

func ensureContainers(ctx context.Context, blobs *storage.Client, cfg config.Config, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, c := range []string{cfg.InputContainer, cfg.OutputContainer, cfg.StatusContainer, cfg.IndexContainer, cfg.LogsContainer, cfg.QuarantineContainer} {
		if c == "" {
			continue
		}
		if err := blobs.EnsureContainer(ctx, c); err != nil {
			log.Warn("container not created; it will be needed", "container", c, "err", err)
			return
		}
	}
}
