// Package sbtest starts the local Service Bus broker for tests.
package sbtest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
)

// Option adjusts the broker options.
type Option func(*servicebus.Options)

// WithConfig sets the queue configuration (*store.Config or a Config.json path).
func WithConfig(cfg any) Option { return func(o *servicebus.Options) { o.Config = cfg } }

// WithDataDir makes the broker durable in dir.
func WithDataDir(dir string) Option { return func(o *servicebus.Options) { o.DataDir = dir } }

// WithKey sets the shared access key name and key.
func WithKey(name, key string) Option {
	return func(o *servicebus.Options) { o.KeyName, o.Key = name, key }
}

// WithLogger sets the broker's logger.
func WithLogger(l *slog.Logger) Option { return func(o *servicebus.Options) { o.Logger = l } }

// Start runs an in-memory broker on 127.0.0.1:0 (one queue "transcode"
// unless configured) and closes it when the test ends. Use
// s.ConnectionString() with azservicebus.NewClientFromConnectionString.
func Start(t testing.TB, opts ...Option) *servicebus.Server {
	t.Helper()
	var o servicebus.Options
	for _, f := range opts {
		f(&o)
	}
	s, err := servicebus.New(o)
	if err != nil {
		t.Fatalf("new service bus emulator: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("start service bus emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close service bus emulator: %v", err)
		}
	})
	return s
}
