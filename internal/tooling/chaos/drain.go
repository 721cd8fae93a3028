// The drain: wait until the pipeline has nothing left to do.

package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/tooling/media"
)

// drain waits until the queue is empty, no Batch task is left and every
// row has a terminal record, three polls in a row; then it replays
// a sample of the captured events and waits again.
func (h *harness) drain(ctx context.Context) error {
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, h.opts.DrainTimeout)
	defer cancel()
	err := h.waitQuiet(ctx)
	if err == nil {
		// Late duplicates: events for work that is finished (§6.6).
		h.report.EventFaults["replayed"] = h.egProxy.replay(ctx, replayFraction)
		err = h.waitQuiet(ctx)
	}
	h.report.DrainWaitSeconds = time.Since(t0).Seconds()
	h.mu.Lock()
	from := h.faultsEnd
	if n := len(h.report.Timeline); n > 0 {
		from = h.faultsStart.Add(time.Duration(h.report.Timeline[n-1].At * float64(time.Second)))
	}
	h.mu.Unlock()
	h.report.DrainSeconds = time.Since(from).Seconds()
	return err
}

func (h *harness) waitQuiet(ctx context.Context) error {
	stable := 0
	last := ""
	for {
		ok, why := h.quiet(ctx)
		if ok {
			stable++
			if stable >= 3 {
				return nil
			}
		} else {
			stable = 0
			last = why
		}
		if !waitCtx(ctx, time.Second) {
			return fmt.Errorf("not drained within %v: %s", h.opts.DrainTimeout, last)
		}
	}
}

// quiet reports whether nothing is left to do.
func (h *harness) quiet(ctx context.Context) (bool, string) {
	if n := h.egProxy.inflight.Load(); n > 0 {
		return false, fmt.Sprintf("%d event deliveries in flight", n)
	}
	msgs, err := h.peek(ctx, false)
	if err != nil {
		return false, "peek queue: " + err.Error()
	}
	if len(msgs) > 0 {
		return false, fmt.Sprintf("%d messages in the queue", len(msgs))
	}
	bc, err := h.st.BatchClient()
	if err != nil {
		return false, err.Error()
	}
	keys, err := bc.ListTaskKeys(ctx, h.cfg.BatchJob, 1000)
	if err != nil {
		return false, "list tasks: " + err.Error()
	}
	if len(keys) > 0 {
		return false, fmt.Sprintf("%d Batch tasks left", len(keys))
	}
	recs, err := h.listRecords(ctx)
	if err != nil {
		return false, "records: " + err.Error()
	}
	type pend struct {
		id   string
		keys []string
	}
	h.mu.Lock()
	var pending []pend
	for _, r := range h.rows {
		if r.expect.Outcome == media.Ignored && r.wantState == "" {
			continue
		}
		if rec, ok := recs[r.Key]; !ok || !rec.State.Terminal() {
			pending = append(pending, pend{r.ID, append([]string{r.Key}, r.superseded...)})
		}
	}
	obs := Observed{StorageKills: slices.Clone(h.storageKills)}
	h.mu.Unlock()
	if len(pending) > 0 && len(obs.StorageKills) > 0 {
		// A terminal record Azurite lost will never come back: do not wait
		// for it (Check reports it as lost_to_storage_rollback).
		if f, err := os.Open(filepath.Join(h.st.LogDir(), "funchost.log")); err == nil {
			obs.TerminalWrites, _ = ParseTerminalWrites(f)
			f.Close()
		}
		pending = slices.DeleteFunc(pending, func(p pend) bool { return obs.lostToRollback(p.keys...) })
	}
	if len(pending) > 0 {
		ids := make([]string, 0, 5)
		for _, p := range pending[:min(len(pending), 5)] {
			ids = append(ids, p.id)
		}
		return false, fmt.Sprintf("%d ledger rows unresolved (%s…)", len(pending), strings.Join(ids, ", "))
	}
	return true, ""
}
