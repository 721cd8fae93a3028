package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/etags"
	"github.com/ffpipe/ffpipe/internal/failure"
	"github.com/ffpipe/ffpipe/internal/queue"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/storage"
)

// maxDispatches bounds how often one key is dispatched when its task fails
// for reasons outside the input (storage or node trouble); retryBackoff is
// the wait before the first retry, doubled for each further one, so that a
// storage outage does not use up every dispatch within seconds.
// A timeout is dispatched again once (a slow or lost node), not four times:
// each costs a whole wall clock of node time.
const (
	maxDispatches        = 5
	maxTimeoutDispatches = 2
	retryBackoff         = 15 * time.Second
)

// inputUnchanged reports whether the input still exists with the eTag the
// task was made for: a download that found no blob was then transient
// (storage restarting or failing over), not a deleted input.
func (a *app) inputUnchanged(ctx context.Context, req request.Request) bool {
	p, err := a.d.Blobs.Properties(ctx, req.Source.Container, req.Source.Blob)
	return err == nil && p.ETag == etags.Normalize(req.Source.ETag)
}

// retryOrFail dispatches the work again after an infrastructure failure
// (failure.Reason.Infrastructure, or an input_missing whose input is in
// fact still there), up to maxDispatches in all, and otherwise records the
// failure: reason is the record's text, code its reason code. The finished
// task is deleted before the request is sent again: a retry that reached
// Dispatch while the old task still existed would be taken for a duplicate.
// A crash between the two leaves a non-terminal record and the input in
// place, which reconcile picks up. rec is the key's record (zero when none).
func (a *app) retryOrFail(ctx context.Context, log *slog.Logger, t batch.CompletedTask, req request.Request, code failure.Reason, reason string, rec records.Record) error {
	if code == failure.InputMissing {
		if !a.inputUnchanged(ctx, req) {
			// The version this key names is gone: deleted, or replaced by
			// a newer upload (which has its own key). Nothing ran and
			// there is nothing to quarantine.
			return a.finish(ctx, log, t, req, records.StateInputMissing, reason, 0)
		}
	} else if !code.Infrastructure() && code != failure.Timeout {
		return a.failTask(ctx, log, t, req, reason)
	}
	limit := maxDispatches
	if code == failure.Timeout {
		limit = maxTimeoutDispatches
	}
	dispatches := max(rec.Attempts, 1)
	if dispatches >= limit {
		return a.failTask(ctx, log, t, req, fmt.Sprintf("%s (after %d dispatches)", reason, dispatches))
	}
	body, err := req.Encode()
	if err != nil {
		return a.failTask(ctx, log, t, req, reason)
	}
	if err := a.d.Sweeper.DeleteTask(ctx, a.cfg.BatchJob, t.Key); err != nil {
		return err
	}
	// A message id of its own per retry: duplicate detection would swallow
	// the key itself inside its window. Dispatch derives the task id (the
	// key) from the body, not from the message id.
	notBefore := a.now().Add(retryBackoff << (dispatches - 1))
	msg := queue.Message{ID: fmt.Sprintf("%s-r%d", t.Key, dispatches), CorrelationID: req.CorrelationID, Body: body,
		Properties: map[string]any{"v": int64(request.Version), "key": t.Key, "origin": FuncSweep, "retry": int64(dispatches)},
		NotBefore:  notBefore}
	if err := a.d.Queue.Send(ctx, msg); err != nil {
		return fmt.Errorf("retry %s: %w", t.Key, err)
	}
	if _, err := a.d.Records.Update(ctx, t.Key, func(old records.Record, _ bool) records.Record {
		r := recordFrom(old, req)
		r.State, r.Reason = records.StateQueued, fmt.Sprintf("retrying at %s after %s", notBefore.UTC().Format(time.RFC3339), reason)
		// Attempts counts dispatches: the one just sent is the next.
		r.Attempts = dispatches + 1
		if r.Timings.Enqueued == nil {
			// Keep the first enqueue: the retry's message has its own.
			r.Timings.Enqueued = tp(t.Enqueued)
		}
		if d := tp(t.Created); d != nil {
			r.Timings.Dispatched = d
		}
		return r
	}); err != nil {
		log.Warn("retry record not written", "err", err)
	}
	log.Warn("infrastructure failure; dispatching again", "reason", reason, "dispatches", dispatches, "notBefore", notBefore)
	return nil
}

// failTask records the failure, quarantines the input and deletes the task.
func (a *app) failTask(ctx context.Context, log *slog.Logger, t batch.CompletedTask, req request.Request, reason string) error {
	// Record first: if the move or the delete fails, the next run repeats
	// all three, and each is idempotent.
	if err := a.record(ctx, t, req, records.StateFailed, reason, 0); err != nil {
		return err
	}
	if q := a.cfg.QuarantineContainer; q != "" && req.Source.Blob != "" {
		err := a.d.Blobs.Move(ctx, req.Source.Container, req.Source.Blob, req.Source.ETag, q, req.Source.Blob)
		switch {
		case err == nil:
			log.Info("input quarantined", "container", q)
		case errors.Is(err, storage.ErrNotFound):
		case errors.Is(err, storage.ErrConditionNotMet):
			log.Info("input replaced by a newer upload; not quarantined")
		default:
			return err
		}
	}
	if err := a.d.Sweeper.DeleteTask(ctx, a.cfg.BatchJob, t.Key); err != nil {
		return err
	}
	log.Warn("task failed", "reason", reason)
	return nil
}
