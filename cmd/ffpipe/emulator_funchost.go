package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/ffpipe/ffpipe/internal/emulator/funchost"
)

func init() {
	commands = append(commands, command{
		name:    "emulator funchost",
		summary: "run the local Azure Functions host for the custom handler in an app root",
		run:     runEmulatorFuncHost,
	})
}

// settingFlags collects repeated --set NAME=VALUE flags.
type settingFlags map[string]string

func (s settingFlags) String() string { return fmt.Sprint(len(s)) + " settings" }

func (s settingFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", v)
	}
	s[k] = val
	return nil
}

func runEmulatorFuncHost(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("emulator funchost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	appDir := fs.String("app", "dist", "function app root (host.json, <Function>/function.json, local.settings.json, handler)")
	listen := fs.String("listen", "127.0.0.1:7071", "address of the host's HTTP endpoint (HTTP triggers, webhooks)")
	data := fs.String("data", ".ffpipe/funchost", "directory for timer schedule status (empty: memory only)")
	masterKey := fs.String("master-key", "", "master key for authLevel function/admin (default: random, printed)")
	egKey := fs.String("eventgrid-key", "", "system key eventgrid_extension required on the Event Grid webhook (default: none)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	restartLimit := fs.Int("restart-limit", 0, "restarts after handler failures before the host gives up (0: 2, like Azure: the third failure within 30 min of the previous stops it; negative: never give up)")
	settings := settingFlags{}
	fs.Var(settings, "set", "app setting override NAME=VALUE (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("emulator funchost: --log-level %q: %w", *level, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	keys := funchost.Keys{Master: *masterKey}
	if *egKey != "" {
		keys.System = map[string]string{"eventgrid_extension": *egKey}
	}
	h := funchost.New(funchost.Options{AppDir: *appDir, Settings: settings, ListenAddr: *listen, Logger: log, Keys: keys, DataDir: *data, RestartLimit: *restartLimit})
	if err := h.Start(ctx); err != nil {
		return fmt.Errorf("emulator funchost: %w", err)
	}
	for name, err := range h.LoadErrors() {
		fmt.Fprintf(stderr, "function %s not loaded: %v\n", name, err)
	}
	// The master key is printed for the user, never logged.
	fmt.Fprintf(stdout, "Functions host on %s\nmaster key: %s\n", h.URL(), h.MasterKey())
	<-ctx.Done()
	log.Info("shutting down")
	if err := h.Close(); err != nil {
		return fmt.Errorf("emulator funchost: %w", err)
	}
	return ctx.Err()
}
