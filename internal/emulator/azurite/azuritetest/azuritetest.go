// Package azuritetest starts a private Azurite for one test.
package azuritetest

import (
	"context"
	"testing"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
)

// Start runs Azurite in a temporary directory for the duration of t.
// It fails the test (never skips) when Azurite is not installed: `make test`
// installs it with npm ci.
func Start(t testing.TB) *azurite.Server {
	t.Helper()
	s := azurite.New(azurite.Options{Dir: t.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("azurite: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
