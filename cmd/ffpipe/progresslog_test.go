package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/handlers"
	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/request"
)

// waitFor polls until out contains every want, or fails at the deadline.
func waitFor(t *testing.T, out *lockedBuffer, want ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, missing := out.String(), ""
		for _, w := range want {
			if !strings.Contains(got, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("output lacks %q:\n%s", missing, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLogProgress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	task := func(key, blob string) batch.RunningTask {
		return batch.RunningTask{Key: key, TaskInfo: batch.TaskInfo{State: "running", Request: request.Request{Source: request.Source{Blob: blob}}}}
	}
	a, b := task("k1", "videos/first.mp4"), task("k2", "")
	src := &fakeProgress{
		steps: [][]batch.RunningTask{{a, b}, {a, b}, {a, b}, {b}, nil},
		pct:   map[string][]float64{"k1": {10, 30, 99.5}, "k2": {0, 0, 0, 60}},
	}
	var out lockedBuffer
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); logProgress(lctx, src, "job", &out, 5*time.Millisecond) }()
	waitFor(t, &out, "progress: k2 task ended")
	stop()
	<-done
	want := []string{
		"progress: videos/first.mp4 running",
		"progress: k2 running",
		"progress: videos/first.mp4 25 %, ETA 10s",
		"progress: videos/first.mp4 75 %, ETA 10s", // 99.5 % passes 50 and 75: one line, the last quarter
		"progress: k2 50 %, ETA 10s",               // a poll prints the running files first, then the ended ones
		"progress: videos/first.mp4 task ended",
		"progress: k2 task ended",
	}
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(out.String(), "\x1b") {
		t.Errorf("plain progress contains terminal escapes: %q", out.String())
	}
}

// failingProgress fails every Running call with the same error.
type failingProgress struct{ fakeProgress }

func (f *failingProgress) Running(context.Context, string, int) ([]batch.RunningTask, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call++
	return nil, errors.New("batch: 503 ServerBusy")
}

func TestLogProgressErrorOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src := &failingProgress{}
	var out lockedBuffer
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); logProgress(lctx, src, "job", &out, time.Millisecond) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		src.mu.Lock()
		calls := src.call
		src.mu.Unlock()
		if calls >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logProgress polled %d times in 30 s, want 5", calls)
		}
		time.Sleep(2 * time.Millisecond)
	}
	stop()
	<-done
	if got := strings.Count(out.String(), "cannot read the running tasks: batch: 503 ServerBusy"); got != 1 {
		t.Errorf("error printed %d times over 5+ polls, want once:\n%s", got, out.String())
	}
}

func TestLogStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var n int
	var mu sync.Mutex
	summarize := func(context.Context) (handlers.Summary, error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		if n == 2 {
			return handlers.Summary{}, errors.New("storage unreachable")
		}
		return handlers.Summary{}, nil
	}
	src := &fakeProgress{steps: [][]batch.RunningTask{nil}}
	var out lockedBuffer
	lctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- logStatus(lctx, summarize, src, "job", &out, 5*time.Millisecond, 5*time.Millisecond) }()
	waitFor(t, &out, "status: storage unreachable (trying again in 5ms)")
	mu.Lock()
	seen := n
	mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(out.String(), "updated ") < seen+1 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("logStatus: %v", err)
	}
	if strings.Count(out.String(), "updated ") < 3 {
		t.Errorf("want a summary block per refresh, got:\n%s", out.String())
	}
	if strings.Contains(out.String(), "\x1b") {
		t.Errorf("plain status contains terminal escapes: %q", out.String())
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct {
		name string
		w    interface{ Write([]byte) (int, error) }
		want bool
	}{{"regular file", f, false}, {"buffer", &bytes.Buffer{}, false}} {
		if got := isTerminal(tc.w); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if !isTerminal(tty) {
			t.Errorf("/dev/tty: got false, want true")
		}
	}
}
