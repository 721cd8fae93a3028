package handlers

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	emubatch "github.com/ffpipe/ffpipe/internal/emulator/batch"
)

// TestProgressFromTheNode runs one real task through the stand-ins and
// reads its progress and probed duration back through Batch's task-file
// API, as Status does while a task runs (here after it ended, when the
// last block says progress=end).
func TestProgressFromTheNode(t *testing.T) {
	s := startStandIns(t, emubatch.Options{MaxSlots: 2}, nil)
	s.upload("p.mp4", videoClip(t, "160x120", "3"), "")
	key := s.keys["p.mp4"]
	deadline := time.Now().Add(2 * time.Minute)
	for {
		s.pump(200 * time.Millisecond)
		done, err := s.tasks.ListCompleted(s.ctx, s.cfg.BatchJob, 10)
		if err != nil && !errors.Is(err, batch.ErrJobNotFound) {
			t.Fatal(err)
		}
		if len(done) == 1 && done[0].Key == key {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s did not complete", key)
		}
	}
	p, err := s.tasks.Progress(s.ctx, s.cfg.BatchJob, key, time.Time{})
	if err != nil {
		t.Fatalf("progress: %v", err)
	}
	if !p.Ended || p.Percent != 100 || math.Abs(p.DurationSeconds-3) > 0.5 || math.Abs(p.DoneSeconds-3) > 0.5 {
		t.Errorf("progress: got %+v, want ended at 100%% of a 3 s source", p)
	}
	running, err := s.tasks.Running(s.ctx, s.cfg.BatchJob, 0)
	if err != nil || len(running) != 0 {
		t.Errorf("running tasks after the end: got %v, %v; want none", running, err)
	}
	if _, err := s.tasks.Progress(s.ctx, s.cfg.BatchJob, "ffffffffffffffffffffffffffffffff", time.Time{}); !errors.Is(err, batch.ErrTaskFileNotFound) {
		t.Errorf("progress of an unknown task: got %v, want ErrTaskFileNotFound", err)
	}
}
