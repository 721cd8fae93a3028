package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/presets"
	"github.com/ffpipe/ffpipe/internal/queue"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/storage"
)

const (
	sweepParallelism = 8
	// stderrTailBytes is how much of a failed task's stderr is read; the
	// last stderrTailLines lines go into the record's reason.
	stderrTailBytes = 4096
	stderrTailLines = 5
	// reconcileScanFactor bounds the input blobs one run looks at, as a
	// multiple of FFPIPE_SWEEP_MAX_TASKS.
	reconcileScanFactor = 10
)

// sweep handles a timerTrigger: settle completed tasks, then reconcile
// inputs nothing knows about. Every step is idempotent, so a crash between
// any two steps is repaired by the next run.
func (a *app) sweep(r *http.Request, inv *invocation) error {
	ctx := r.Context()
	var errs []error
	tasks, err := a.d.Sweeper.ListCompleted(ctx, a.cfg.BatchJob, a.cfg.SweepMaxTasks)
	switch {
	case errors.Is(err, batch.ErrJobNotFound):
		tasks = nil // nothing dispatched yet
	case err != nil:
		errs = append(errs, fmt.Errorf("list completed tasks: %w", err))
	}
	var done, failed atomic.Int64
	taskErrs := make([]error, len(tasks))
	parallel(len(tasks), sweepParallelism, func(i int) {
		ok, err := a.settle(ctx, tasks[i])
		taskErrs[i] = err
		if err == nil && ok {
			done.Add(1)
		} else if err == nil {
			failed.Add(1)
		}
	})
	errs = append(errs, taskErrs...)
	requeued := 0
	if a.reconcileDue() {
		requeued, err = a.reconcile(ctx, inv)
		if err != nil {
			a.reconcileFailed()
			errs = append(errs, err)
		}
	}
	inv.logf("sweep: %d completed tasks (%d done, %d failed), %d inputs re-enqueued", len(tasks), done.Load(), failed.Load(), requeued)
	if err := errors.Join(errs...); err != nil {
		// The next timer run retries; failing makes the problem visible.
		return retry(err)
	}
	return nil
}

// settle finishes one completed task: done (output verified, input
// deleted) or failed (reason recorded, input quarantined), then deletes the
// task. It reports whether the task succeeded.
func (a *app) settle(ctx context.Context, t batch.CompletedTask) (bool, error) {
	req := t.Request
	if t.RequestErr != nil {
		// Fall back on what Dispatch recorded.
		rec, err := a.d.Records.Get(ctx, t.Key)
		if err != nil && !errors.Is(err, records.ErrNotFound) {
			return false, err
		}
		req = request.Request{
			V:             request.Version,
			Source:        request.Source{Container: rec.Source.Container, Blob: rec.Source.Blob, ETag: rec.Source.ETag, Size: rec.Source.Size},
			Output:        request.Output{Container: rec.Output.Container, Blob: rec.Output.Blob},
			Preset:        rec.Preset,
			CorrelationID: rec.CorrelationID,
		}
	}
	log := a.fileLog(FuncSweep, t.Key, req.CorrelationID).With("blob", req.Source.Blob)
	if req.Source.Blob == "" {
		// Neither the task nor a record says which file this was.
		err := a.finish(ctx, log, t, req, records.StateFailed, "unknown_task: the task carries no readable request ("+errString(t.RequestErr)+")", 0)
		return false, err
	}
	if t.Success || a.onlyLogUploadFailed(ctx, t, req) {
		p, err := a.d.Blobs.Properties(ctx, req.Output.Container, req.Output.Blob)
		switch {
		case err == nil && p.Size > 0:
			if err := a.d.Blobs.DeleteIfMatch(ctx, req.Source.Container, req.Source.Blob, req.Source.ETag); err != nil {
				switch {
				case errors.Is(err, storage.ErrNotFound):
					// Deleted by an earlier run, or by the user.
				case errors.Is(err, storage.ErrConditionNotMet):
					log.Info("input replaced by a newer upload; kept")
				default:
					return false, err
				}
			}
			return true, a.finish(ctx, log, t, req, records.StateDone, "", p.Size)
		case err == nil, errors.Is(err, storage.ErrNotFound):
			return false, a.settleFailure(ctx, log, t, req, "no_output: the task succeeded but the output blob is missing or empty")
		default:
			return false, err
		}
	}
	return false, a.settleFailure(ctx, log, t, req, a.failureReason(ctx, log, t))
}

// settleFailure settles a failed task: retried or recorded (retryOrFail),
// unless it was a second run of work another run already finished (a
// request sent again after its work was settled; Dispatch reads no
// records). That run's failure says nothing new (its input is usually
// gone: deleted as done, or quarantined), so the first verdict stays and
// only the task goes.
func (a *app) settleFailure(ctx context.Context, log *slog.Logger, t batch.CompletedTask, req request.Request, reason string) error {
	rec, err := a.d.Records.Get(ctx, t.Key)
	if err != nil && !errors.Is(err, records.ErrNotFound) {
		return err
	}
	// The same run settled again (a crash between record and task delete)
	// carries its own end time and goes the whole way again.
	sameRun := rec.Timings.Ended == nil && t.End.IsZero() || rec.Timings.Ended != nil && rec.Timings.Ended.Equal(t.End)
	if err == nil && rec.State.Terminal() && !sameRun {
		log.Info("a second run of finished work failed; the record stays", "state", rec.State, "recorded", rec.Reason, "reason", reason)
		return a.d.Sweeper.DeleteTask(ctx, a.cfg.BatchJob, t.Key)
	}
	return a.retryOrFail(ctx, log, t, req, reason, rec)
}

// onlyLogUploadFailed reports a task whose ffmpeg run succeeded (exit 0)
// but that Batch failed on a file upload, while the output blob was
// written during that very run: only a log file was lost, the work is done.
// The time window keeps an output written by another version of the same
// input (another key, same output name) from counting.
func (a *app) onlyLogUploadFailed(ctx context.Context, t batch.CompletedTask, req request.Request) bool {
	if t.ExitCode == nil || *t.ExitCode != 0 || !strings.HasPrefix(strings.ToLower(t.FailureCode), "fileupload") || t.Start.IsZero() || t.End.IsZero() {
		return false
	}
	p, err := a.d.Blobs.Properties(ctx, req.Output.Container, req.Output.Blob)
	if err != nil || p.Size == 0 {
		return false
	}
	// Last-Modified has a resolution of one second.
	return !p.LastModified.Before(t.Start.Add(-time.Second)) && !p.LastModified.After(t.End.Add(time.Second))
}

// maxDispatches bounds how often one key is dispatched when its task fails
// for reasons outside the input (storage or node trouble); retryBackoff is
// the wait before the first retry, doubled for each further one, so that a
// storage outage does not use up every dispatch within seconds.
const (
	maxDispatches = 5
	retryBackoff  = 15 * time.Second
)

// infrastructureFailures are the reason codes that say nothing about the
// input: Batch does not retry a failed resource download or output upload
// (reliability-security.md §3.1, §3.4), so Sweep does, a bounded number of
// times, instead of quarantining a good file as poison.
var infrastructureFailures = map[string]bool{"download_error": true, "upload_error": true, "no_output": true}

// inputUnchanged reports whether the input still exists with the eTag the
// task was made for: a download that found no blob was then transient
// (storage restarting or failing over), not a deleted input.
func (a *app) inputUnchanged(ctx context.Context, req request.Request) bool {
	p, err := a.d.Blobs.Properties(ctx, req.Source.Container, req.Source.Blob)
	return err == nil && p.ETag == request.NormalizeETag(req.Source.ETag)
}

// retryOrFail dispatches the work again after an infrastructure failure, up
// to maxDispatches in all, and otherwise records the failure. The finished
// task is deleted before the request is sent again: a retry that reached
// Dispatch while the old task still existed would be taken for a duplicate.
// A crash between the two leaves a non-terminal record and the input in
// place, which reconcile picks up. rec is the key's record (zero when none).
func (a *app) retryOrFail(ctx context.Context, log *slog.Logger, t batch.CompletedTask, req request.Request, reason string, rec records.Record) error {
	code, _, _ := strings.Cut(reason, ":")
	if code == "input_missing" {
		if !a.inputUnchanged(ctx, req) {
			// The version this key names is gone: deleted, or replaced by
			// a newer upload (which has its own key). Nothing ran and
			// there is nothing to quarantine.
			return a.finish(ctx, log, t, req, records.StateInputMissing, reason, 0)
		}
	} else if !infrastructureFailures[code] {
		return a.failTask(ctx, log, t, req, reason)
	}
	dispatches := max(rec.Attempts, 1)
	if dispatches >= maxDispatches {
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

// finish records a final state and deletes the task.
func (a *app) finish(ctx context.Context, log *slog.Logger, t batch.CompletedTask, req request.Request, state records.State, reason string, outSize int64) error {
	if err := a.record(ctx, t, req, state, reason, outSize); err != nil {
		return err
	}
	if err := a.d.Sweeper.DeleteTask(ctx, a.cfg.BatchJob, t.Key); err != nil {
		return err
	}
	log.Info("task settled", "state", state, "reason", reason)
	return nil
}

func (a *app) record(ctx context.Context, t batch.CompletedTask, req request.Request, state records.State, reason string, outSize int64) error {
	now := a.now()
	_, err := a.d.Records.Update(ctx, t.Key, func(old records.Record, _ bool) records.Record {
		r := recordFrom(old, req)
		r.State, r.Reason = state, reason
		if outSize > 0 {
			r.Output.Size = outSize
		}
		if t.ExitCode != nil {
			code := *t.ExitCode
			r.ExitCode = &code
		}
		r.Attempts = max(r.Attempts, t.RetryCount+1)
		if r.Timings.Enqueued == nil {
			// A request sent straight to the queue has no queued record:
			// the task carries its message's enqueued time. A time already
			// recorded (OnBlobCreated's, or the first of several
			// dispatches) stays.
			r.Timings.Enqueued = tp(t.Enqueued)
		}
		if d := tp(t.Created); d != nil {
			r.Timings.Dispatched = d // the task's creation: Dispatch writes no record
		}
		if st := tp(t.Start); st != nil {
			r.Timings.Started = st
		}
		if en := tp(t.End); en != nil {
			r.Timings.Ended = en
		}
		r.Timings.Swept = tp(now)
		return r
	})
	if err != nil {
		return fmt.Errorf("write %s record %s: %w", state, t.Key, err)
	}
	return nil
}

// failureReason explains a failed task: a reason code (see failureCode),
// then the exit code, Batch failure info and the last lines of stderr.
func (a *app) failureReason(ctx context.Context, log *slog.Logger, t batch.CompletedTask) string {
	var parts []string
	if t.ExitCode != nil {
		parts = append(parts, fmt.Sprintf("exit code %d", *t.ExitCode))
	}
	if t.FailureCode != "" || t.FailureMessage != "" {
		parts = append(parts, strings.TrimSpace(strings.Join([]string{t.FailureCategory, t.FailureCode, firstLine(t.FailureMessage)}, " ")))
	}
	_, stderr := batch.LogBlobs(t.Key)
	tail, err := a.d.Blobs.Tail(ctx, a.cfg.LogsContainer, stderr, stderrTailBytes)
	switch {
	case err == nil:
		if s := lastLines(string(tail), stderrTailLines); s != "" {
			parts = append(parts, "stderr: "+s)
		}
	case errors.Is(err, storage.ErrNotFound):
	default:
		log.Warn("stderr not read", "err", err)
	}
	code := failureCode(t, string(tail))
	if len(parts) == 0 {
		return code
	}
	return code + ": " + strings.Join(parts, "; ")
}

// failureCode classifies a failed task into the reason codes operators and
// the test plan use (reliability-security.md §6.7). The input is kept in
// every case; the code only says why.
func failureCode(t batch.CompletedTask, stderr string) string {
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(stderr, s) {
				return true
			}
		}
		return false
	}
	switch {
	case strings.EqualFold(t.FailureCode, "MaxWallClockTimeExpiry"):
		return "timeout"
	case strings.HasPrefix(strings.ToLower(t.FailureCode), "fileupload"):
		return "upload_error"
	case strings.EqualFold(t.FailureCode, "BlobNotFound"):
		return "input_missing"
	case strings.Contains(strings.ToLower(t.FailureCode), "blob") || strings.Contains(strings.ToLower(t.FailureCode), "download"):
		return "download_error"
	case t.ExitCode != nil && *t.ExitCode == presets.ExitDamagedInput:
		return "decode_error"
	case has("matches no streams"):
		return "no_audio"
	case has("moov atom not found", "Invalid data found when processing input"):
		return "not_media"
	case has("partial file", "corrupt input packet", "Error while decoding", "error while decoding", "Invalid NAL", "decode_slice"):
		return "decode_error"
	}
	return "task_failed"
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\r\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.TrimSpace(strings.Join(lines, " | "))
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s)
}

func errString(err error) string {
	if err == nil {
		return "none"
	}
	return err.Error()
}

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
	parallel(len(candidates), sweepParallelism, func(i int) {
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
		if !validCorrelationID(cid) {
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
