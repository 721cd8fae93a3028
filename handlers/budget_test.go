package handlers

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/presets"
	"github.com/ffpipe/ffpipe/internal/request"
)

// slowBatch is a Batch whose addtaskcollection applies the tasks and then
// takes latency to answer (or until the caller gives up): the reply of a
// request cut short is lost, its tasks are there.
type slowBatch struct {
	*fakeBatch
	mu        sync.Mutex
	latency   time.Duration
	deadlines []time.Time // of each AddTasks call's context (zero: none)
}

func (s *slowBatch) AddTasks(ctx context.Context, job string, specs []batch.TaskSpec) ([]batch.AddResult, error) {
	s.mu.Lock()
	d, _ := ctx.Deadline()
	s.deadlines = append(s.deadlines, d)
	latency := s.latency
	s.mu.Unlock()
	res, err := s.fakeBatch.AddTasks(ctx, job, specs)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(latency)
	defer t.Stop()
	select {
	case <-t.C:
		return res, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("add tasks to job %s: %w", job, ctx.Err())
	}
}

// withSlowBatch rebuilds e's handler around a slowBatch.
func withSlowBatch(t *testing.T, e *env, latency time.Duration) *slowBatch {
	t.Helper()
	sb := &slowBatch{fakeBatch: e.batch, latency: latency}
	d := Deps{
		Log: config.NewLogger(e.cfg, &lockedWriter{w: e.logs}), Queue: e.queue, Blobs: e.blobs, SAS: e.blobs,
		Records: e.records, Submitter: sb, Sweeper: e.batch, Tasks: e.batch, Presets: presets.Default(),
		Now: func() time.Time { return e.now },
	}
	if err := Check(e.cfg, d); err != nil {
		t.Fatal(err)
	}
	e.h = New(e.cfg, d)
	return sb
}

// TestDispatchBudget: a batch whose Batch call would outlive the queue's
// lock is cut at half the lock duration and fails (the host abandons it in
// time); its redelivery finds every task already there and duplicates
// nothing.
func TestDispatchBudget(t *testing.T) {
	const lock = 4 * time.Second
	e := newEnv(t, func(m map[string]string) { m["FFPIPE_QUEUE_LOCK_DURATION"] = lock.String() })
	// Far longer than the lock; the test's own timeout bounds it.
	sb := withSlowBatch(t, e, time.Hour)
	const n = 150
	var bodies []string
	var keys []string
	for i := range n {
		blob := fmt.Sprintf("in/f-%03d.mp4", i)
		etag := e.blobs.put("input", blob, []byte("data"), e.now)
		bodies = append(bodies, fmt.Sprintf(`{"v":1,"source":{"container":"input","blob":%q,"etag":%q,"size":4}}`, blob, etag))
		keys = append(keys, request.Key("ingestacct", "input", blob, etag))
	}
	env := batchEnvelope(nil, bodies...)

	start := time.Now()
	code, resp := e.invoke(FuncDispatch, env)
	if code != http.StatusInternalServerError {
		t.Fatalf("slow batch: got %d, want 500 so that the host abandons it (logs %v)", code, resp.Logs)
	}
	if !strings.Contains(strings.Join(resp.Logs, "\n"), "budget of 2s spent") {
		t.Errorf("logs: got %q, want the budget named", resp.Logs)
	}
	sb.mu.Lock()
	deadlines := append([]time.Time(nil), sb.deadlines...)
	sb.mu.Unlock()
	// Half the lock from the handler's start, which is a moment after ours:
	// well inside the lock either way.
	if len(deadlines) != 1 || deadlines[0].IsZero() || !deadlines[0].Before(start.Add(lock*3/4)) {
		t.Fatalf("AddTasks deadlines: got %v, want one before %v (well inside the lock from %v)", deadlines, start.Add(lock*3/4), start)
	}
	created := map[string]time.Time{}
	for _, k := range keys {
		if !e.batch.has(k) {
			t.Fatalf("task %s: missing after the cut call (the fake applies before answering)", k)
		}
		created[k] = e.batch.created[k]
	}

	// The redelivery, with Batch answering at once: every task existed.
	e.now = e.now.Add(time.Minute)
	sb.mu.Lock()
	sb.latency = 0
	sb.mu.Unlock()
	code, resp = e.invoke(FuncDispatch, env)
	if code != http.StatusOK {
		t.Fatalf("redelivery: got %d, want 200 (logs %v)", code, resp.Logs)
	}
	want := fmt.Sprintf("%d messages, 0 tasks added, %d existed, 0 rejected", n, n)
	if !strings.Contains(strings.Join(resp.Logs, "\n"), want) {
		t.Errorf("redelivery logs: got %q, want %q", resp.Logs, want)
	}
	if len(e.batch.tasks) != n {
		t.Errorf("tasks: got %d, want %d", len(e.batch.tasks), n)
	}
	for _, k := range keys {
		if !e.batch.created[k].Equal(created[k]) {
			t.Errorf("task %s created again at %v (first %v)", k, e.batch.created[k], created[k])
		}
	}
}

// TestDispatchBudgetDefault: the budget is half the lock duration, PT5M by
// default (infra's lockDuration).
func TestDispatchBudgetDefault(t *testing.T) {
	tests := []struct {
		setting string
		want    time.Duration
	}{
		{"", 150 * time.Second},
		{"PT1M", 30 * time.Second},
		{"10s", 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.setting, func(t *testing.T) {
			e := newEnv(t, func(m map[string]string) {
				if tt.setting != "" {
					m["FFPIPE_QUEUE_LOCK_DURATION"] = tt.setting
				}
			})
			a, err := build(e.cfg, Deps{Log: nil, Queue: e.queue, Blobs: e.blobs, SAS: e.blobs, Records: e.records,
				Submitter: e.batch, Sweeper: e.batch, Tasks: e.batch, Presets: presets.Default()})
			if err != nil {
				t.Fatal(err)
			}
			if got := a.dispatchBudget(); got != tt.want {
				t.Errorf("budget: got %v, want %v", got, tt.want)
			}
		})
	}
}
