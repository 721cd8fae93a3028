// The drain: wait until the pipeline has nothing left to do, or has stopped
// moving, or the generous cap is reached.

package chaos

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/tooling/media"
)

// How a drain ended (Report.DrainEnd).
const (
	// DrainResolved: every ledger row has a terminal record and nothing is
	// left in flight, three polls in a row.
	DrainResolved = "resolved"
	// DrainQuiescent: nothing moved for Options.QuietPeriod while work was
	// left: what is left is stuck, and a row without a terminal record is
	// lost.
	DrainQuiescent = "quiescent"
	// DrainCap: Options.DrainTimeout was reached while the pipeline was
	// still moving (a slow machine): rows still in flight are reported
	// unfinished, apart from lost.
	DrainCap = "cap"
)

// drainPoll is the pause between two looks at the pipeline. Each look
// reads every record, so it is not shorter.
const drainPoll = 2 * time.Second

// drain waits until the pipeline settles, then replays a sample of the
// captured events and waits again. It never fails on speed: it ends when
// everything is resolved, when nothing moved for QuietPeriod, or at the
// DrainTimeout cap; Observe and Check then tell lost from unfinished.
func (h *harness) drain(ctx context.Context) error {
	t0 := time.Now()
	deadline := t0.Add(h.opts.DrainTimeout)
	end, last, err := settle(ctx, h.snapshot, h.opts.QuietPeriod, deadline)
	if end == DrainResolved {
		// Late duplicates: events for work that is finished (docs/reliability.md#duplicates-and-reordering).
		h.report.EventFaults["replayed"] = h.egProxy.replay(ctx, replayFraction)
		end, last, err = settle(ctx, h.snapshot, h.opts.QuietPeriod, deadline)
	}
	h.report.DrainEnd = end
	if end == DrainCap {
		h.inFlight = last.inFlight()
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

// settle polls with look until the pipeline is resolved (three looks in a
// row), has not moved for quiet, or deadline passes. It returns how it
// ended and the last snapshot that could be taken.
func settle(ctx context.Context, look func(context.Context) (snapshot, error), quiet time.Duration, deadline time.Time) (string, snapshot, error) {
	var last snapshot
	stable := 0
	moved := time.Now()
	for {
		s, err := look(ctx)
		if err != nil {
			// A look that failed (a component restarting, a slow machine)
			// tells nothing: count it as movement, never as a stall.
			moved, stable = time.Now(), 0
			last.why = err.Error()
		} else {
			if s.signature != last.signature {
				moved = time.Now()
			}
			last = s
			if !s.resolved() {
				stable = 0
			} else if stable++; stable >= 3 {
				return DrainResolved, s, nil
			}
		}
		if still := time.Since(moved); still >= quiet {
			return DrainQuiescent, last, fmt.Errorf("nothing moved for %v: %s", still.Round(time.Second), last.why)
		}
		if !time.Now().Before(deadline) || !waitCtx(ctx, min(drainPoll, time.Until(deadline))) {
			return DrainCap, last, fmt.Errorf("drain cap reached while the pipeline was still moving: %s", last.why)
		}
	}
}

// snapshot is one look at what is left to do.
type snapshot struct {
	deliveries int64           // event deliveries in flight
	messages   []string        // MessageIds in the queue
	tasks      []string        // Batch task ids
	counts     string          // Batch task counts by state
	open       map[string]bool // keys with a record that is not final
	pending    []string        // ledger rows without a terminal record
	signature  string          // changes whenever the pipeline moves
	why        string          // what is left, for a person
}

func (s snapshot) resolved() bool {
	return s.deliveries == 0 && len(s.messages) == 0 && len(s.tasks) == 0 && len(s.pending) == 0
}

// inFlight is the keys work was still in flight for (Observed.InFlight).
func (s snapshot) inFlight() map[string]bool {
	m := map[string]bool{}
	for _, k := range slices.Concat(s.messages, s.tasks) {
		m[k] = true
	}
	for k := range s.open {
		m[k] = true
	}
	return m
}

// snapshot looks at the event proxy, the queue, the Batch job, the records
// and the ledger.
func (h *harness) snapshot(ctx context.Context) (snapshot, error) {
	s := snapshot{deliveries: h.egProxy.inflight.Load(), open: map[string]bool{}}
	msgs, err := h.peek(ctx, false)
	if err != nil {
		return s, fmt.Errorf("peek queue: %w", err)
	}
	for _, m := range msgs {
		s.messages = append(s.messages, m.MessageID)
	}
	bc, err := h.st.BatchClient()
	if err != nil {
		return s, err
	}
	if s.tasks, err = bc.ListTaskKeys(ctx, h.cfg.BatchJob, 1000); err != nil {
		return s, fmt.Errorf("list tasks: %w", err)
	}
	counts, err := bc.TaskCounts(ctx, h.cfg.BatchJob)
	if err != nil {
		return s, fmt.Errorf("task counts: %w", err)
	}
	s.counts = fmt.Sprintf("%+v", counts)
	recs, err := h.listRecords(ctx, nil)
	if err != nil {
		return s, fmt.Errorf("records: %w", err)
	}
	states := make([]string, 0, len(recs))
	for k, r := range recs {
		states = append(states, k+"="+string(r.State))
		if !r.State.Terminal() {
			s.open[k] = true
		}
	}
	s.pending = h.pendingRows(recs)
	sort.Strings(states)
	sort.Strings(s.messages)
	sort.Strings(s.tasks)
	sum := sha256.Sum256([]byte(strings.Join([]string{fmt.Sprint(s.deliveries), strings.Join(s.messages, ","),
		strings.Join(s.tasks, ","), s.counts, strings.Join(states, ",")}, "|")))
	s.signature = hex.EncodeToString(sum[:8])
	s.why = fmt.Sprintf("%d event deliveries in flight, %d messages in the queue, %d Batch tasks (%s), %d ledger rows unresolved (%s)",
		s.deliveries, len(s.messages), len(s.tasks), s.counts, len(s.pending), strings.Join(s.pending[:min(len(s.pending), 5)], ", "))
	return s, nil
}

// pendingRows lists the rows (by ID) that should end with a terminal
// record and have none, apart from those whose record an Azurite rollback
// lost: that one will never come back (Check reports it apart).
func (h *harness) pendingRows(recs map[string]records.Record) []string {
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
		if f, err := os.Open(filepath.Join(h.st.LogDir(), "funchost.log")); err == nil {
			obs.TerminalWrites, _ = ParseTerminalWrites(f)
			f.Close()
		}
		pending = slices.DeleteFunc(pending, func(p pend) bool { return obs.lostToRollback(p.keys...) })
	}
	ids := make([]string, len(pending))
	for i, p := range pending {
		ids[i] = p.id
	}
	return ids
}
