package funchost

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/ffpipe/ffpipe/internal/ports"
)

// worker runs the custom handler process the way the host's
// HttpFunctionInvocationDispatcher and WorkerProcess do (docs/localhost.md,
// "The handler's lifecycle"): start, readiness, restart after a failure
// until the error threshold, no restart after a clean exit, SIGKILL to stop
// or restart it. Invocations ask it for the current endpoint and wait while
// the handler is (re)starting.
type worker struct {
	log          *slog.Logger
	exe          string
	args         []string
	dir          string
	env          []string
	fixedPort    int
	readyTimeout time.Duration
	// restartLimit is how many failures are followed by a restart; the next
	// one stops the handler for good (the host's ErrorEventsThreshold is 3,
	// so 2). Negative: never give up.
	restartLimit int
	// errorWindow: a failure more than this after the previous one starts
	// the count again (WorkerRestartErrorIntervalThresholdInMinutes).
	errorWindow time.Duration
	// Backoff between restarts, only when restartLimit < 0 (the host itself
	// restarts at once; a local stack that never gives up must not spin).
	minBackoff time.Duration
	maxBackoff time.Duration

	mu       sync.Mutex
	baseURL  string // "" while not ready
	pid      int
	proc     *os.Process
	kill     string        // why the host killed the running process ("" if it did not)
	stopErr  error         // set once the worker gives up or is stopped
	changed  chan struct{} // closed and replaced on every state change
	restarts int
	gen      int // incremented on every state change
}

func (w *worker) setState(baseURL string, pid int, stopErr error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.setStateLocked(baseURL, pid, stopErr)
}

func (w *worker) setStateLocked(baseURL string, pid int, stopErr error) {
	w.baseURL, w.pid = baseURL, pid
	if stopErr != nil && w.stopErr == nil {
		w.stopErr = stopErr
	}
	w.gen++
	close(w.changed)
	w.changed = make(chan struct{})
}

// waitChange waits until the state changes from generation gen.
func (w *worker) waitChange(ctx context.Context, gen int) error {
	w.mu.Lock()
	if w.gen != gen {
		w.mu.Unlock()
		return nil
	}
	ch := w.changed
	w.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// generation returns the current state generation.
func (w *worker) generation() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gen
}

// endpoint waits until the handler is ready and returns its base URL and
// the state generation it belongs to.
func (w *worker) endpoint(ctx context.Context) (string, int, error) {
	for {
		w.mu.Lock()
		u, stopErr, ch, gen := w.baseURL, w.stopErr, w.changed, w.gen
		w.mu.Unlock()
		if stopErr != nil {
			return "", gen, stopErr
		}
		if u != "" {
			return u, gen, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return "", gen, fmt.Errorf("wait for handler: %w", ctx.Err())
		}
	}
}

func (w *worker) currentPid() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pid
}

// restart kills the running handler with SIGKILL so that the supervisor
// starts a new one, as the host's RestartWorkerWithInvocationIdAsync does
// after a functionTimeout. It does nothing when the process of generation
// gen is already gone (the host: "worker is already disposed"). Every
// invocation still running on the old process fails. It does not count as
// a failure toward the restart limit.
func (w *worker) restart(gen int, reason string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gen != gen || w.proc == nil || w.stopErr != nil {
		return false
	}
	w.log.Warn("restarting the handler process", "pid", w.pid, "reason", reason)
	w.kill = reason
	proc := w.proc
	// Invocations that fail from here on see a new generation.
	w.setStateLocked("", 0, nil)
	_ = proc.Kill()
	return true
}

// exitKind classifies how a handler process ended.
type exitKind int

const (
	exitFailed    exitKind = iota // crash, nonzero exit, not ready: counts toward the limit
	exitClean                     // exit 0: the host never restarts it
	exitRestart                   // exit 200 or killed by the host: restart, not counted
	exitCancelled                 // the host is stopping
)

// intentionalRestartExitCode is WorkerConstants.IntentionalRestartExitCode.
const intentionalRestartExitCode = 200

// run supervises the handler until ctx is cancelled, the handler exits
// cleanly, or it fails once more than restartLimit allows.
func (w *worker) run(ctx context.Context) {
	var failures []time.Time
	backoff := w.minBackoff
	for {
		kind, err := w.once(ctx)
		switch kind {
		case exitCancelled:
			w.setState("", 0, ErrHandlerStopped)
			return
		case exitClean:
			w.log.Error("handler exited with code 0; the host does not restart a clean exit, invocations fail from now on")
			w.setState("", 0, fmt.Errorf("handler exited with code 0 and is not restarted: %w", ErrHandlerStopped))
			return
		case exitFailed:
			now := time.Now()
			// AddOrUpdateErrorBucket: a failure long after the previous one
			// starts a new count.
			if n := len(failures); n > 0 && now.Sub(failures[n-1]) > w.errorWindow {
				failures = failures[:0]
			}
			failures = append(failures, now)
			if w.restartLimit >= 0 && len(failures) > w.restartLimit {
				w.log.Error("exceeded handler restart retry count; the handler stays down",
					"failures", len(failures), "window", w.errorWindow, "err", err)
				w.setState("", 0, fmt.Errorf("handler failed %d times, each within %s of the previous: %w", len(failures), w.errorWindow, ErrHandlerStopped))
				return
			}
			w.log.Error("handler failed; restarting", "err", err, "failures", len(failures))
		case exitRestart:
			w.log.Warn("handler restarting", "reason", err)
		}
		w.mu.Lock()
		w.restarts++
		w.mu.Unlock()
		if w.restartLimit < 0 && kind == exitFailed {
			if !sleepCtx(ctx, backoff) {
				w.setState("", 0, ErrHandlerStopped)
				return
			}
			backoff = min(backoff*2, w.maxBackoff)
		}
	}
}

// once starts one handler process and returns when it exits.
func (w *worker) once(ctx context.Context) (exitKind, error) {
	port := w.fixedPort
	if port == 0 {
		p, err := freePort()
		if err != nil {
			return exitFailed, err
		}
		port = p
	}
	cmd := exec.Command(w.exe, w.args...)
	cmd.Dir = w.dir
	ps := strconv.Itoa(port)
	id := newUUID()
	cmd.Env = append(append([]string(nil), w.env...),
		"FUNCTIONS_CUSTOMHANDLER_PORT="+ps,
		"FUNCTIONS_HTTPWORKER_PORT="+ps,
		"FUNCTIONS_CUSTOMHANDLER_WORKER_ID="+id,
		"FUNCTIONS_HTTPWORKER_ID="+id,
	)
	cmd.SysProcAttr = handlerAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return exitFailed, fmt.Errorf("start handler: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return exitFailed, fmt.Errorf("start handler: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return exitFailed, fmt.Errorf("start handler %s: %w", w.exe, err)
	}
	pid := cmd.Process.Pid
	w.mu.Lock()
	w.proc, w.kill = cmd.Process, ""
	w.mu.Unlock()
	w.log.Info("handler started", "pid", pid, "port", port, "exe", w.exe)
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { defer pipes.Done(); w.pump(stdout, slog.LevelInfo, "stdout") }()
	go func() { defer pipes.Done(); w.pump(stderr, slog.LevelError, "stderr") }()
	exited := make(chan error, 1)
	go func() {
		pipes.Wait() // Wait closes the pipes; drain them first
		exited <- cmd.Wait()
	}()
	kind, err := w.supervise(ctx, cmd.Process, "http://127.0.0.1:"+ps, exited)
	w.mu.Lock()
	w.proc = nil
	w.mu.Unlock()
	return kind, err
}

// supervise waits for the handler to get ready and then to exit, and
// classifies the exit. Stopping (ctx done) or giving up on readiness is
// Process.Kill(), SIGKILL, as in WorkerProcess.Dispose: no SIGTERM, so the
// handler's own drain never runs, as in Azure.
func (w *worker) supervise(ctx context.Context, proc *os.Process, base string, exited <-chan error) (exitKind, error) {
	pid := proc.Pid
	readyErr := w.waitReady(ctx, base, exited)
	var err error
	switch {
	case readyErr == nil:
		w.log.Info("handler ready", "pid", pid, "url", base)
		w.mu.Lock()
		if w.kill == "" { // not restarted while it was starting
			w.setStateLocked(base, pid, nil)
		}
		w.mu.Unlock()
		select {
		case err = <-exited:
			w.setState("", 0, nil)
			return w.classify(pid, err)
		case <-ctx.Done():
		}
	case errors.Is(readyErr, errExited):
		// Any exit before it was ready is a failure (the host's readiness
		// wait fails and publishes an error event), unless the host killed it.
		w.setState("", 0, nil)
		w.mu.Lock()
		killed := w.kill != ""
		w.mu.Unlock()
		if killed {
			return exitRestart, readyErr
		}
		return exitFailed, readyErr
	default:
		w.log.Error("handler not ready; killing it", "err", readyErr)
	}
	w.setState("", 0, nil)
	_ = proc.Kill()
	<-exited
	if ctx.Err() != nil {
		w.log.Info("handler killed (SIGKILL) on shutdown", "pid", pid)
		return exitCancelled, ctx.Err()
	}
	return exitFailed, readyErr
}

// classify maps the exit of the process pid to what the host does next.
func (w *worker) classify(pid int, err error) (exitKind, error) {
	w.mu.Lock()
	reason := w.kill
	w.mu.Unlock()
	if reason != "" {
		return exitRestart, fmt.Errorf("handler pid %d killed by the host: %s", pid, reason)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return exitClean, nil
	case errors.As(err, &ee) && ee.ExitCode() == intentionalRestartExitCode:
		return exitRestart, fmt.Errorf("handler pid %d exited with code %d (restart requested)", pid, intentionalRestartExitCode)
	}
	return exitFailed, fmt.Errorf("handler pid %d: %w", pid, err)
}

var errExited = errors.New("handler exited")

// waitReady polls GET / every 25 ms until any HTTP response, like the host.
func (w *worker) waitReady(ctx context.Context, base string, exited <-chan error) error {
	deadline := time.NewTimer(w.readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		select {
		case <-tick.C:
		case err := <-exited:
			if err == nil {
				err = errors.New("exit status 0")
			}
			return fmt.Errorf("%w before it was ready: %v", errExited, err)
		case <-deadline.C:
			return fmt.Errorf("handler not ready within %s", w.readyTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (w *worker) pump(r io.Reader, level slog.Level, stream string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	ctx := context.Background()
	for sc.Scan() {
		// Redacting costs a regexp per line: only for lines that are kept
		// (a busy Dispatch writes thousands a second).
		if w.log.Enabled(ctx, level) {
			w.log.Log(ctx, level, redact(sc.Text()), "source", "Host.Function.Console", "stream", stream)
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

func freePort() (int, error) { return ports.Free() }
