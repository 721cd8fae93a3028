// Faults: the seeded plan, each kind of fault, and the repairs the harness
// makes as the user after an Azurite rollback.

package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/storage"
	"github.com/ffpipe/ffpipe/internal/tooling/stack"
)

// repairRollback redoes the harness's own writes of the last rollback
// window after an Azurite SIGKILL (LokiJS saves every 5 s).
func (h *harness) repairRollback(ctx context.Context, killed time.Time) {
	// LokiJS saves every 5 s, but a SIGKILL during a save keeps the
	// previous file, and saves lag under load: look further back.
	const window = 30 * time.Second
	h.mu.Lock()
	var recent []*Row
	for r, t := range h.ops {
		if t.After(killed.Add(-window)) {
			recent = append(recent, r)
		}
	}
	h.mu.Unlock()
	for _, r := range recent {
		var props storage.Props
		err := retry(ctx, "check "+r.ID, func(ctx context.Context) error {
			var err error
			props, err = h.store.Properties(ctx, h.cfg.InputContainer, r.Name)
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			return err
		})
		if err != nil {
			h.log.Warn("rollback check", "row", r.ID, "err", err)
			continue
		}
		switch {
		case r.Kind == KindDeleted:
			if props.ETag != "" {
				h.note("azurite rollback undid the delete of %s; deleted again", r.ID)
				_ = h.deleteInput(ctx, r)
			}
		case props.ETag == "" || props.ETag != r.ETag:
			// The upload was rolled back, or the input is legitimately
			// gone: converted (deleted by Sweep) or failed (quarantined).
			if r.Kind == KindOverwriteOld || (props.ETag == "" && h.legitimatelyGone(ctx, r)) {
				continue
			}
			h.note("azurite rollback lost the upload of %s (eTag %s); uploaded again", r.ID, r.ETag)
			h.event("azurite", "rollback: upload of %s lost", r.ID)
			h.reupload(ctx, r)
		}
	}
}

// legitimatelyGone reports whether a missing input was removed by the
// pipeline: done (Sweep deleted it) or failed and in quarantine.
func (h *harness) legitimatelyGone(ctx context.Context, r *Row) bool {
	recs := records.New(h.store, h.cfg.StatusContainer, nil)
	rec, err := recs.Get(ctx, r.Key)
	switch {
	case err != nil:
		return false
	case rec.State == records.StateDone:
		return true
	case rec.State == records.StateFailed && h.cfg.QuarantineContainer != "":
		_, err := h.store.Properties(ctx, h.cfg.QuarantineContainer, r.Name)
		return err == nil
	}
	return false
}

func (h *harness) reupload(ctx context.Context, r *Row) {
	h.mu.Lock()
	path := r.path
	h.mu.Unlock()
	if path == "" {
		h.note("cannot re-upload %s: source file unknown", r.ID)
		return
	}
	if err := h.upload(ctx, r, path); err != nil {
		h.note("re-upload %s: %v", r.ID, err)
	}
}

func (h *harness) ensureAllRunning(ctx context.Context) error {
	for _, c := range stack.Components() {
		if h.st.Pid(c) != 0 {
			continue
		}
		if err := h.restart(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

func (h *harness) restart(ctx context.Context, c string) error {
	return retry(ctx, "restart "+c, func(ctx context.Context) error {
		if h.st.Pid(c) != 0 {
			return nil
		}
		return h.st.Restart(ctx, c)
	})
}

// injectFaults fires opts.Kills faults at seeded random times within the
// window, each from opts.Faults, restarting what it killed.
func (h *harness) injectFaults(ctx context.Context, window time.Duration) {
	plan := faultPlan(h.opts.Seed, h.opts.Kills, h.opts.Faults, window, h.opts.MaxRestartDelay)
	start := time.Now()
	for _, st := range plan {
		if !waitCtx(ctx, time.Until(start.Add(st.at))) {
			return
		}
		h.fault(ctx, st.fault, st.pause)
	}
	waitCtx(ctx, time.Until(start.Add(window)))
}

// faultStep is one fault of the plan: when (from the start of the window),
// which, and the pause before the killed component is started again.
type faultStep struct {
	at, pause time.Duration
	fault     string
}

// faultPlan draws the whole schedule up front from its own generator, so
// a seed always yields the same plan whatever else draws random numbers
// meanwhile. When there are at least as many kills as kinds of fault,
// every kind is in the plan at least once (in a seeded order), so a small
// run such as the smoke tier still exercises each of them.
func faultPlan(seed uint64, kills int, faults []string, window, maxPause time.Duration) []faultStep {
	rng := rand.New(rand.NewPCG(seed, 0xfa017))
	plan := make([]faultStep, kills)
	for i := range plan {
		plan[i].at = time.Duration(rng.Int64N(int64(window)))
	}
	slices.SortFunc(plan, func(a, b faultStep) int { return cmp.Compare(a.at, b.at) })
	kinds := make([]string, 0, kills)
	if kills >= len(faults) {
		kinds = append(kinds, faults...)
	}
	for len(kinds) < kills {
		kinds = append(kinds, faults[rng.IntN(len(faults))])
	}
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	for i := range plan {
		plan[i].fault = kinds[i]
		plan[i].pause = time.Duration(rng.Int64N(int64(maxPause)))
	}
	return plan
}

func (h *harness) fault(ctx context.Context, f string, pause time.Duration) {
	switch f {
	case FaultHandler:
		pid := h.st.KillHandler()
		if pid == 0 {
			h.count(h.report.Missed, f)
			return
		}
		h.count(h.report.KillsByComponent, f)
		h.event(f, "SIGKILL pid %d", pid)
	case FaultRestart:
		pid := h.st.HandlerPid()
		if err := h.restartWorker(ctx); err != nil {
			h.count(h.report.Missed, f)
			h.note("worker restart: %v", err)
			return
		}
		h.count(h.report.KillsByComponent, f)
		h.event(f, "host restarted its worker (pid %d)", pid)
	case FaultFFmpeg:
		// Wait (briefly) for a running ffmpeg.
		deadline := time.Now().Add(3 * time.Second)
		for {
			if pids := h.st.TaskProcesses("ffmpeg"); len(pids) > 0 {
				pid := pids[h.randIntN(len(pids))]
				if err := killPid(pid); err == nil {
					h.count(h.report.KillsByComponent, f)
					h.event(f, "SIGKILL pid %d", pid)
					return
				}
			}
			if time.Now().After(deadline) || !waitCtx(ctx, 50*time.Millisecond) {
				h.count(h.report.Missed, f)
				return
			}
		}
	case FaultSBDrop:
		n := h.sbProxy.drop()
		h.count(h.report.KillsByComponent, f)
		h.event(f, "%d connections cut", n)
	default:
		if h.st.Pid(f) == 0 {
			h.count(h.report.Missed, f)
			return
		}
		killed := time.Now()
		outage := -1
		if f == stack.Azurite {
			outage = h.storageOutage(killed)
		}
		pid := h.st.Pid(f)
		if err := h.st.Stop(f, true); err != nil {
			h.log.Warn("kill", "component", f, "err", err)
		}
		h.count(h.report.KillsByComponent, f)
		h.event(f, "SIGKILL pid %d", pid)
		waitCtx(ctx, pause)
		t0 := time.Now()
		// Restart even when the fault window just ended (ctx cancelled).
		rctx := context.WithoutCancel(ctx)
		if err := h.restart(rctx, f); err != nil {
			h.note("restart %s failed: %v", f, err)
			return
		}
		if outage >= 0 {
			h.storageBack(outage, t0)
		}
		h.recovMu.Lock()
		h.recov[f] = append(h.recov[f], time.Since(t0))
		h.recovMu.Unlock()
		h.event(f, "restarted as pid %d after %.2f s", h.st.Pid(f), time.Since(killed).Seconds())
		if f == stack.Azurite {
			h.repairRollback(rctx, killed)
		}
	}
}

// storageOutage records an Azurite kill and returns its index.
func (h *harness) storageOutage(killed time.Time) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.storageKills = append(h.storageKills, killed)
	h.storageRestarts = append(h.storageRestarts, time.Time{})
	return len(h.storageKills) - 1
}

// storageBack records when Azurite was started again after outage i (it
// listens from then on).
func (h *harness) storageBack(i int, started time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.storageRestarts[i] = started
}

func percentiles(ds []time.Duration) p5095 {
	if len(ds) == 0 {
		return p5095{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(q*float64(len(s)-1) + 0.5)
		return s[i].Seconds()
	}
	return p5095{P50: at(0.5), P95: at(0.95), N: len(s)}
}

// restartWorker asks the Functions host to restart its handler process
// (POST /admin/host/restart with the master key), as the real host does
// after a functionTimeout.
func (h *harness) restartWorker(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.st.HostURL()+"/admin/host/restart", nil)
	if err != nil {
		return err
	}
	req.Header.Set("x-functions-key", h.st.HostMasterKey())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"restarted":true`) {
		return fmt.Errorf("POST /admin/host/restart: %d %s", resp.StatusCode, b)
	}
	return nil
}
