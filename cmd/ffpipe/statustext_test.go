package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/handlers"
	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/records"
)

var update = flag.Bool("update", false, "rewrite testdata/status")

// bins is a last hour of 5-minute bins starting at 10:05 UTC.
func bins(ended ...int) *records.Throughput {
	e := make([]int, 12)
	copy(e[12-len(ended):], ended)
	return &records.Throughput{From: time.Date(2026, 3, 1, 10, 5, 0, 0, time.UTC), BinSeconds: 300, Ended: e}
}

func failed(key, reason string) records.Record {
	return records.Record{Key: key, State: records.StateFailed, Reason: reason}
}

// TestWriteSummary checks the text view against testdata/status/<name>.txt
// (go test ./cmd/ffpipe -run TestWriteSummary -update rewrites them).
func TestWriteSummary(t *testing.T) {
	for _, tt := range []struct {
		name string
		view handlers.Summary
	}{
		{"empty", handlers.Summary{Summary: records.Summary{Counts: map[records.State]int{}, Indexed: true, RetentionDays: 90,
			Throughput: bins()}, Batch: &batch.TaskCounts{}}},
		{"one-bin", handlers.Summary{Summary: records.Summary{Counts: map[records.State]int{records.StateDone: 1}, Total: 1,
			Indexed: true, RetentionDays: 90, EndedLastHour: 1, NodeSecondsToday: 42, NodeSecondsLast30Days: 42,
			Throughput: bins(1)}, Batch: &batch.TaskCounts{Running: 1}}},
		{"many-reasons", handlers.Summary{Summary: records.Summary{
			Counts: map[records.State]int{records.StateDone: 180, records.StateFailed: 50, records.StateRejected: 13, records.StateInputMissing: 2, records.StateBadRequest: 1},
			Total:  246, Indexed: true, RetentionDays: 30, EndedLastHour: 57, NodeSecondsToday: 5400, NodeSecondsLast30Days: 97200,
			Throughput: bins(0, 3, 12, 0, 1, 7, 9, 12, 0, 6, 5, 2),
			FailureCounts: map[string]int{"decode_error": 29, "timeout": 11, "empty": 7, "not_media": 6, "too_large": 6,
				"input_missing": 2, "no_output": 2, "bad_request": 1, "download_error": 1, "no_audio": 1, "verify_failed": 0}},
			Batch: &batch.TaskCounts{Active: 4, Running: 2, Completed: 1}}},
		{"not-indexed", handlers.Summary{Summary: records.Summary{
			Counts: map[records.State]int{records.StateDone: 1, records.StateFailed: 3, records.StateRejected: 1}, Total: 5,
			Recent: []records.Record{failed("k1", "decode_error: exit code 65"), failed("k2", "timeout: wall clock 3600 s"),
				failed("k3", "decode_error: exit code 1"), {Key: "k4", State: records.StateRejected, Reason: "something new"},
				{Key: "k5", State: records.StateDone}}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			writeSummary(&b, tt.view)
			path := filepath.Join("testdata", "status", tt.name+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if got := b.String(); got != string(want) {
				t.Errorf("text view:\ngot:\n%s\nwant (%s):\n%s", got, path, want)
			}
		})
	}
}

func TestThroughputLineScale(t *testing.T) {
	for _, tt := range []struct {
		name  string
		t     *records.Throughput
		spark string
	}{
		{"no files", bins(), "············"},
		{"one file is a full bar", bins(1), "···········█"},
		{"one file beside many still shows", bins(1, 100), "··········▁█"},
		{"levels round up", bins(1, 2, 3, 4, 5, 6, 7, 8), "····▁▂▃▄▅▆▇█"},
		{"half", bins(50, 100), "··········▄█"},
		{"a negative count is none", bins(-1, 4), "···········█"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			line := throughputLine(tt.t)
			_, after, _ := strings.Cut(line, "│")
			got, _, _ := strings.Cut(after, "│")
			if got != tt.spark {
				t.Errorf("sparkline: got %q, want %q (line %q)", got, tt.spark, line)
			}
		})
	}
}

// fakeSummaries plays views, one per call, the last one again after.
type fakeSummaries struct {
	mu    sync.Mutex
	views []handlers.Summary
	calls int
}

func (f *fakeSummaries) summarize(context.Context) (handlers.Summary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.views[min(f.calls, len(f.views))-1], nil
}

// TestWatchStatusRefreshesSummary: --watch redraws the throughput line and
// the failures table as they change (here from one reason to three, so
// the panel grows), above the running files' bars.
func TestWatchStatusRefreshesSummary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first := handlers.Summary{Summary: records.Summary{Counts: map[records.State]int{records.StateFailed: 1}, Total: 1,
		Indexed: true, RetentionDays: 90, Throughput: bins(1), FailureCounts: map[string]int{"decode_error": 1}}}
	second := handlers.Summary{Summary: records.Summary{Counts: map[records.State]int{records.StateFailed: 4}, Total: 4,
		Indexed: true, RetentionDays: 90, Throughput: bins(1, 3), FailureCounts: map[string]int{"decode_error": 2, "timeout": 1, "empty": 1}}}
	f := &fakeSummaries{views: []handlers.Summary{first, second}}
	task := batch.RunningTask{Key: "k9", TaskInfo: batch.TaskInfo{State: "running"}}
	task.Request.Source.Blob = "videos/running.mp4"
	src := &fakeProgress{steps: [][]batch.RunningTask{{task}}, pct: map[string][]float64{"k9": {40}}}
	var out lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- watchStatus(ctx, f.summarize, src, "job", &out, 20*time.Millisecond, 30*time.Millisecond)
	}()
	wants := []string{
		"10:05 │···········█│ 11:00 UTC", "failures by reason (records of the last 90 days): 1",
		"10:05 │··········▃█│ 11:00 UTC", "failures by reason (records of the last 90 days): 4", "timeout", "empty",
		"videos/running.mp4",
	}
	shown := func() bool {
		got := out.String()
		for _, w := range wants {
			if !strings.Contains(got, w) {
				return false
			}
		}
		return true
	}
	// Wait until both summaries were drawn (or the deadline), then stop.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(30 * time.Second); !shown() && time.Now().Before(deadline); {
		<-tick.C
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("watch: got %v, want a clean end", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("watch did not end with its context")
	}
	got := out.String()
	for _, want := range wants {
		if !strings.Contains(got, want) {
			t.Errorf("watch output lacks %q:\n%s", want, got)
		}
	}
	if i, j := strings.Index(got, "│···········█│"), strings.LastIndex(got, "│··········▃█│"); i < 0 || j < i {
		t.Errorf("watch output: the second summary (at %d) does not follow the first (at %d)", j, i)
	}
}

// lockedBuffer is a bytes.Buffer safe for the bars' writer and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
