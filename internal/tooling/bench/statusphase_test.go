package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/tooling/bench"
	"github.com/ffpipe/ffpipe/internal/tooling/stack/stacktest"
)

// TestStatusPhase runs the status phase on the real local stack with a few
// hundred records: seeded into Azurite's data, rebuilt through the API and
// counted by Status through the host. The phase fails unless the rebuild
// listed and the summary counted every seeded record. No timing is asserted.
func TestStatusPhase(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local stack")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const n = 700
	res, err := bench.Run(ctx, bench.Options{AppDir: stacktest.AppDir(t), WorkDir: t.TempDir(),
		Phases: []string{bench.PhaseStatus}, StatusRecords: n})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusRecords != n {
		t.Errorf("status_records: got %d, want %d", res.StatusRecords, n)
	}
	if res.StatusP50Ms <= 0 || res.StatusKeyP50Ms <= 0 || res.StatusHTMLP50Ms <= 0 {
		t.Errorf("timings: got summary %v, key %v, HTML %v ms, want all measured", res.StatusP50Ms, res.StatusKeyP50Ms, res.StatusHTMLP50Ms)
	}
	if tg := res.Targets[bench.TargetStatus]; tg.Skipped || tg.Unmeasured || tg.Value != res.StatusP50Ms {
		t.Errorf("target %s: got %+v, want the measured p50 %v", bench.TargetStatus, tg, res.StatusP50Ms)
	}
}
