package handlers

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/storage"
)

// reconcileScanFactor bounds the input blobs one run looks at, as a
// multiple of FFPIPE_SWEEP_MAX_TASKS.
const reconcileScanFactor = 10

// reconcileDue reports whether this Sweep run should reconcile, and if so
// marks it done now: at most once per quarter of FFPIPE_RECONCILE_AFTER.
// Reconcile lists the input container, and an input qualifies only once it
// is FFPIPE_RECONCILE_AFTER old, so listing every quarter of that delays a
// repair by at most a quarter; listing on every run (every second in the
// local stack) would cost a listing of the whole backlog each time. A
// failed reconcile is due again at the next run.
func (a *app) reconcileDue() bool {
	now := a.now()
	a.reconcileMu.Lock()
	defer a.reconcileMu.Unlock()
	if !a.lastReconcile.IsZero() && now.Sub(a.lastReconcile) < a.cfg.ReconcileAfter/4 && !now.Before(a.lastReconcile) {
		return false
	}
	a.lastReconcile = now
	return true
}

func (a *app) reconcileFailed() {
	a.reconcileMu.Lock()
	a.lastReconcile = time.Time{}
	a.reconcileMu.Unlock()
}

// reconcile re-enqueues inputs older than FFPIPE_RECONCILE_AFTER that have
// no task and no finished record (a lost event or message). The message id
// is the key, so a duplicate is harmless.
func (a *app) reconcile(ctx context.Context, inv *invocation) (int, error) {
	cutoff := a.now().Add(-a.cfg.ReconcileAfter)
	var candidates []storage.Item
	scanned := 0
	err := a.d.Blobs.List(ctx, a.cfg.InputContainer, "", func(it storage.Item) bool {
		scanned++
		if it.LastModified.Before(cutoff) && a.hasAllowedSuffix(it.Name) {
			candidates = append(candidates, it)
		}
		return scanned < reconcileScanFactor*a.cfg.SweepMaxTasks && len(candidates) < a.cfg.SweepMaxTasks
	})
	if err != nil {
		return 0, fmt.Errorf("reconcile: %w", err)
	}
	var requeued atomic.Int64
	errs := make([]error, len(candidates))
	parallel(len(candidates), a.cfg.SweepParallelism, func(i int) {
		it := candidates[i]
		key := request.Key(a.account, a.cfg.InputContainer, it.Name, it.ETag)
		rec, err := a.d.Records.Get(ctx, key)
		recorded := err == nil
		switch {
		case err == nil && (rec.State.Terminal() || rec.Updated.After(cutoff)):
			return // finished, or recently active
		case err != nil && !errors.Is(err, records.ErrNotFound):
			errs[i] = err
			return
		}
		exists, err := a.d.Sweeper.TaskExists(ctx, a.cfg.BatchJob, key)
		if err != nil && !errors.Is(err, batch.ErrJobNotFound) {
			errs[i] = err
			return
		}
		if exists {
			return
		}
		cid := rec.CorrelationID
		if !request.ValidCorrelationID(cid) {
			cid = key
		}
		req := request.Request{
			V:             request.Version,
			Source:        request.Source{Container: a.cfg.InputContainer, Blob: it.Name, ETag: it.ETag, Size: it.Size},
			CorrelationID: cid,
		}
		a.fileLog(FuncSweep, key, cid).Info("reconcile: re-enqueueing an input with no task and no record", "blob", it.Name, "lastModified", it.LastModified)
		if err := a.enqueue(ctx, inv, FuncSweep, key, req, it.LastModified, map[string]any{"reconciled": true}, recorded); err != nil {
			errs[i] = err
			return
		}
		requeued.Add(1)
	})
	return int(requeued.Load()), errors.Join(errs...)
}
