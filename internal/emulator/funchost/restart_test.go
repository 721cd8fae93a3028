package funchost

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stopped reports the error the worker gave up with, nil while it runs.
func (h *Host) stopped() error {
	h.worker.mu.Lock()
	defer h.worker.mu.Unlock()
	return h.worker.stopErr
}

// TestRestartPolicy: the host restarts a failed handler twice and stops at
// the third failure; the count starts again after a quiet window; exit code
// 200 restarts without counting; exit 0 is never restarted.
func TestRestartPolicy(t *testing.T) {
	tests := []struct {
		name         string
		window       time.Duration
		exit         reply
		exits        int
		wantRestarts int
		wantStopped  bool
	}{
		{"crashes stop at the third", time.Hour, reply{exit: true, code: 7}, 3, 2, true},
		{"count resets after a quiet window", time.Nanosecond, reply{exit: true, code: 7}, 4, 4, false},
		{"exit 200 restarts without counting", time.Hour, reply{exit: true, code: 200}, 4, 4, false},
		{"exit 0 is not restarted", time.Hour, reply{exit: true, clean: true}, 1, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newControl(t)
			dir := app{functions: map[string]string{"OnBlobCreated": egFunction}}.write(t)
			h := startHost(t, dir, c, Options{RestartWindow: tt.window})
			c.setReply(func(call) reply { return tt.exit })
			for i := range tt.exits {
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				err := h.Run(ctx, "OnBlobCreated", blobCreated)
				cancel()
				if err == nil {
					t.Fatalf("exit %d: invocation succeeded, want a failure", i+1)
				}
				waitFor(t, "the host to handle the exit", func() bool {
					return h.HandlerRestarts() == i+1 || h.stopped() != nil
				})
			}
			if got := h.HandlerRestarts(); got != tt.wantRestarts {
				t.Errorf("restarts: got %d, want %d", got, tt.wantRestarts)
			}
			c.setReply(func(call) reply { return okReply })
			err := h.Run(t.Context(), "OnBlobCreated", blobCreated)
			if tt.wantStopped {
				if !errors.Is(err, ErrHandlerStopped) || !errors.Is(h.stopped(), ErrHandlerStopped) {
					t.Fatalf("after the last exit: got %v, want ErrHandlerStopped", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("after the last exit: got %v, want the restarted handler to answer", err)
			}
		})
	}
}

// TestFunctionTimeoutRestartsHandler: an invocation that outlives
// functionTimeout makes the host restart the handler process, which fails
// every other invocation in flight on it; the restart is not a failure.
func TestFunctionTimeoutRestartsHandler(t *testing.T) {
	c := newControl(t)
	dir := app{
		hostJSON:  `{"version":"2.0","functionTimeout":"00:00:02","customHandler":{"description":{"defaultExecutablePath":"handler"}}}`,
		functions: map[string]string{"OnBlobCreated": egFunction},
	}.write(t)
	release, hanging := make(chan struct{}), make(chan struct{}, 2)
	t.Cleanup(func() { close(release) })
	c.setReply(func(cl call) reply {
		if strings.Contains(cl.Body, "hang") {
			hanging <- struct{}{}
			<-release
		}
		return okReply
	})
	h := startHost(t, dir, c, Options{RestartLimit: 1})
	pid := h.HandlerPid()
	hang := strings.Replace(blobCreated, `"eventType"`, `"hang":true,"eventType"`, 1)

	slow, other := make(chan error, 1), make(chan error, 1)
	start := time.Now()
	go func() { slow <- h.Run(context.Background(), "OnBlobCreated", hang) }()
	within(t, "an invocation to reach the handler", hanging)
	// The second invocation starts well after the first, so the first's
	// timeout (and the restart) comes before the second's own deadline.
	waitFor(t, "half the function timeout", func() bool { return time.Since(start) > time.Second })
	go func() { other <- h.Run(context.Background(), "OnBlobCreated", hang) }()
	within(t, "an invocation to reach the handler", hanging)
	if err := within(t, "the slow invocation", slow); !errors.Is(err, ErrFunctionTimeout) {
		t.Fatalf("the slow invocation: got %v, want ErrFunctionTimeout", err)
	}
	if err := within(t, "the other invocation", other); !errors.Is(err, ErrHandlerRestarted) {
		t.Fatalf("the invocation beside it: got %v, want ErrHandlerRestarted", err)
	}
	must(t, h.Run(t.Context(), "OnBlobCreated", blobCreated))
	if cl := c.next(t); cl.Pid == pid {
		t.Fatalf("handler pid after the timeout: got %d again, want a new process", cl.Pid)
	}
	if got := h.HandlerRestarts(); got != 1 {
		t.Errorf("restarts: got %d, want 1", got)
	}
	if err := h.stopped(); err != nil {
		t.Errorf("a timeout restart counted as a failure (limit 1): %v", err)
	}
}

// TestShutdownKillsHandler: Close stops the handler with SIGKILL, like
// Process.Kill() in the host, so its SIGTERM handler never runs. The probe
// (a handler that writes a file on SIGTERM) is checked first.
func TestShutdownKillsHandler(t *testing.T) {
	c := newControl(t)
	dir := app{functions: map[string]string{"OnBlobCreated": egFunction}}.write(t)

	probe := filepath.Join(t.TempDir(), "probe")
	h := startHost(t, dir, c, Options{Settings: map[string]string{"TEST_TERM_FILE": probe}})
	must(t, syscall.Kill(h.HandlerPid(), syscall.SIGTERM))
	waitFor(t, "the probe handler to see SIGTERM", func() bool { _, err := os.Stat(probe); return err == nil })
	must(t, h.Close())

	term := filepath.Join(t.TempDir(), "term")
	h = startHost(t, dir, c, Options{Settings: map[string]string{"TEST_TERM_FILE": term}})
	pid := h.HandlerPid()
	must(t, h.Close())
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("handler pid %d after Close: got %v, want it gone", pid, err)
	}
	if _, err := os.Stat(term); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the handler saw SIGTERM on Close (stat %s: %v); want SIGKILL only", term, err)
	}
}

// TestSettingsPrecedence: under func start an exported environment variable
// wins over local.settings.json (an empty one does not); Options.Settings
// win over both.
func TestSettingsPrecedence(t *testing.T) {
	c := newControl(t)
	t.Setenv("AppBoth", "from-env")
	t.Setenv("AppEmptyEnv", "")
	t.Setenv("AppOverride", "from-env")
	dir := app{
		functions: map[string]string{"OnBlobCreated": egFunction},
		values:    map[string]string{"AppBoth": "from-file", "AppEmptyEnv": "from-file", "AppOnlyFile": "from-file", "AppOverride": "from-file"},
	}.write(t)
	h := startHost(t, dir, c, Options{Settings: map[string]string{"AppOverride": "from-options"}})
	must(t, h.Run(t.Context(), "OnBlobCreated", blobCreated))
	env := c.next(t).Env
	for k, want := range map[string]string{"AppBoth": "from-env", "AppEmptyEnv": "from-file", "AppOnlyFile": "from-file", "AppOverride": "from-options"} {
		if env[k] != want {
			t.Errorf("handler env %s: got %q, want %q", k, env[k], want)
		}
		if got, _ := h.lookup(k); got != want {
			t.Errorf("binding expression %%%s%%: got %q, want %q", k, got, want)
		}
	}
}

// within receives from ch, failing the test after 30 s.
func within[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// TestAdminRestart: POST /admin/host/restart (master key) restarts the
// handler process; the invocation running on it fails, the restart is not
// a failure, and the next invocation reaches the new process.
func TestAdminRestart(t *testing.T) {
	c := newControl(t)
	dir := app{functions: map[string]string{"OnBlobCreated": egFunction}}.write(t)
	release, hanging := make(chan struct{}), make(chan struct{}, 1)
	t.Cleanup(func() { close(release) })
	c.setReply(func(cl call) reply {
		if strings.Contains(cl.Body, "hang") {
			hanging <- struct{}{}
			<-release
		}
		return okReply
	})
	h := startHost(t, dir, c, Options{RestartLimit: 1})
	pid := h.HandlerPid()
	if code, _ := post(t, h.URL()+"/admin/host/restart", nil, ""); code != 401 {
		t.Fatalf("restart without the master key: got %d, want 401", code)
	}
	running := make(chan error, 1)
	hang := strings.Replace(blobCreated, `"eventType"`, `"hang":true,"eventType"`, 1)
	go func() { running <- h.Run(context.Background(), "OnBlobCreated", hang) }()
	within(t, "the invocation to reach the handler", hanging)
	if code, body := post(t, h.URL()+"/admin/host/restart", map[string]string{"x-functions-key": h.MasterKey()}, ""); code != 200 || !strings.Contains(body, `"restarted":true`) {
		t.Fatalf("restart: got %d %s, want 200 restarted", code, body)
	}
	if err := within(t, "the running invocation", running); !errors.Is(err, ErrHandlerRestarted) {
		t.Fatalf("the invocation running during the restart: got %v, want ErrHandlerRestarted", err)
	}
	must(t, h.Run(t.Context(), "OnBlobCreated", blobCreated))
	if cl := c.next(t); cl.Pid == pid {
		t.Fatalf("handler pid after the restart: got %d again, want a new process", cl.Pid)
	}
	if got, err := h.HandlerRestarts(), h.stopped(); got != 1 || err != nil {
		t.Errorf("after the restart: restarts %d, stopped %v; want 1, running", got, err)
	}
}
