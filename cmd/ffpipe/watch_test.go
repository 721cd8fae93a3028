package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/request"
)

// fakeProgress plays a script of running-task snapshots, one per call.
type fakeProgress struct {
	mu    sync.Mutex
	steps [][]batch.RunningTask
	pct   map[string][]float64
	call  int
}

func (f *fakeProgress) Running(context.Context, string, int) ([]batch.RunningTask, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := min(f.call, len(f.steps)-1)
	f.call++
	return f.steps[i], nil
}

func (f *fakeProgress) Progress(_ context.Context, _, key string, _ time.Time) (batch.Progress, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ps := f.pct[key]
	p := ps[min(f.call-1, len(ps)-1)]
	return batch.Progress{Percent: p, ETA: 10 * time.Second}, nil
}

func TestWatchProgress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	task := func(key, blob string) batch.RunningTask {
		return batch.RunningTask{Key: key, TaskInfo: batch.TaskInfo{State: "running", Request: request.Request{Source: request.Source{Blob: blob}}}}
	}
	a, b := task("k1", "videos/first.mp4"), task("k2", "videos/second.mp4")
	src := &fakeProgress{
		steps: [][]batch.RunningTask{{a, b}, {a, b}, {b}, nil, nil, nil},
		pct:   map[string][]float64{"k1": {30, 60}, "k2": {10, 50, 90}},
	}
	var out bytes.Buffer
	if err := watchProgress(ctx, src, "job", &out, 50*time.Millisecond, true); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"videos/first.mp4", "videos/second.mp4", "ETA 10s"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if !strings.Contains(got, "60 %") && !strings.Contains(got, "90 %") {
		t.Errorf("output shows no later progress (60 %% or 90 %%):\n%s", got)
	}
}

// TestWatchProgressStopsWithContext: --watch ends cleanly on Ctrl-C (the
// context) even while bars are running.
func TestWatchProgressStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	a := batch.RunningTask{Key: "k1", TaskInfo: batch.TaskInfo{State: "running"}}
	src := &fakeProgress{steps: [][]batch.RunningTask{{a}}, pct: map[string][]float64{"k1": {40}}}
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() { done <- watchProgress(ctx, src, "job", &out, 50*time.Millisecond, false) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("watch: got %v, want a clean end", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("watch did not end with its context")
	}
}
