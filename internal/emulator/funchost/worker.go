package funchost

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// worker runs the custom handler process: start, readiness, restart with
// backoff, stop. Invocations ask it for the current endpoint and wait while
// the handler is (re)starting.
type worker struct {
	log           *slog.Logger
	exe           string
	args          []string
	dir           string
	env           []string
	fixedPort     int
	readyTimeout  time.Duration
	restartLimit  int // exits within restartWindow before giving up; <0 = never
	restartWindow time.Duration
	minBackoff    time.Duration
	maxBackoff    time.Duration

	mu       sync.Mutex
	baseURL  string // "" while not ready
	pid      int
	stopErr  error         // set once the worker gives up or is stopped
	changed  chan struct{} // closed and replaced on every state change
	restarts int
	gen      int // incremented on every state change
}

func (w *worker) setState(baseURL string, pid int, stopErr error) {
	w.mu.Lock()
	defer w.mu.Unlock()
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

// run supervises the handler until ctx is cancelled or the restart limit is hit.
func (w *worker) run(ctx context.Context) {
	var exits []time.Time
	backoff := w.minBackoff
	for {
		err := w.once(ctx)
		if ctx.Err() != nil {
			w.setState("", 0, ErrHandlerStopped)
			return
		}
		now := time.Now()
		exits = append(exits, now)
		for len(exits) > 0 && now.Sub(exits[0]) > w.restartWindow {
			exits = exits[1:]
		}
		if w.restartLimit >= 0 && len(exits) > w.restartLimit {
			w.log.Error("exceeded handler restart retry count; the handler stays down",
				"exits", len(exits), "window", w.restartWindow, "err", err)
			w.setState("", 0, fmt.Errorf("handler exited %d times within %s: %w", len(exits), w.restartWindow, ErrHandlerStopped))
			return
		}
		w.mu.Lock()
		w.restarts++
		w.mu.Unlock()
		w.log.Error("handler exited; restarting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			w.setState("", 0, ErrHandlerStopped)
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, w.maxBackoff)
	}
}

// once starts one handler process and returns when it exits.
func (w *worker) once(ctx context.Context) error {
	port := w.fixedPort
	if port == 0 {
		p, err := freePort()
		if err != nil {
			return err
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
	// Own process group: Ctrl-C in a terminal reaches the host, which then
	// stops the handler itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("start handler: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("start handler: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start handler %s: %w", w.exe, err)
	}
	pid := cmd.Process.Pid
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

	base := "http://127.0.0.1:" + ps
	readyErr := w.waitReady(ctx, base, exited)
	switch {
	case readyErr == nil:
		w.log.Info("handler ready", "pid", pid, "url", base)
		w.setState(base, pid, nil)
	case errors.Is(readyErr, errExited):
		w.setState("", 0, nil)
		return readyErr
	default:
		w.log.Error("handler not ready; killing it", "err", readyErr)
	}
	if readyErr == nil {
		select {
		case err := <-exited:
			w.setState("", 0, nil)
			if err == nil {
				err = errors.New("exit status 0")
			}
			return fmt.Errorf("handler pid %d: %w", pid, err)
		case <-ctx.Done():
		}
	}
	// Stop: SIGTERM to the group, SIGKILL after a grace period.
	w.setState("", 0, nil)
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
	}
	if readyErr != nil {
		return readyErr
	}
	return ctx.Err()
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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick handler port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
