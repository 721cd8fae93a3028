// Package stacktest packages the function app and starts the local stack for
// one test.
package stacktest

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/fsutil"
	"github.com/ffpipe/ffpipe/internal/tooling/stack"
)

var (
	pkgOnce sync.Once
	pkgDir  string
	pkgErr  error
)

// AppDir packages the function app once per test binary (`ffpipe package`,
// the same code as `make package`) and returns its directory.
func AppDir(t testing.TB) string {
	t.Helper()
	pkgOnce.Do(func() {
		root, err := fsutil.ModuleRoot()
		if err != nil {
			pkgErr = err
			return
		}
		dir, err := os.MkdirTemp("", "ffpipe-dist-")
		if err != nil {
			pkgErr = err
			return
		}
		cmd := exec.Command("go", "run", "./cmd/ffpipe", "package", "--out", dir)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			pkgErr = errors.New("ffpipe package: " + err.Error() + ": " + string(out))
			return
		}
		pkgDir = dir
	})
	if pkgErr != nil {
		t.Fatalf("package function app: %v", pkgErr)
	}
	return pkgDir
}

// Start runs the whole local stack in a temporary directory until the test ends.
func Start(t testing.TB, mutate ...func(*stack.Options)) *stack.Stack {
	t.Helper()
	opts := stack.Options{
		Dir:    t.TempDir(),
		AppDir: AppDir(t),
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for _, m := range mutate {
		m(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, opts)
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Logf("close stack: %v", err)
		}
	})
	return s
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary builds the ffpipe CLI once per test binary and returns its path,
// for Options.Exec (stand-ins as child processes).
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		root, err := fsutil.ModuleRoot()
		if err != nil {
			binErr = err
			return
		}
		dir, err := os.MkdirTemp("", "ffpipe-bin-")
		if err != nil {
			binErr = err
			return
		}
		out := filepath.Join(dir, "ffpipe")
		cmd := exec.Command("go", "build", "-o", out, "./cmd/ffpipe")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			binErr = errors.New("go build ./cmd/ffpipe: " + err.Error() + ": " + string(b))
			return
		}
		binPath = out
	})
	if binErr != nil {
		t.Fatalf("build ffpipe: %v", binErr)
	}
	return binPath
}
