package handlers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/failure"
	"github.com/ffpipe/ffpipe/internal/presets"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/storage"
)

const (
	// stderrTailBytes is how much of a failed task's stderr is read; the
	// last stderrTailLines lines go into the record's reason.
	stderrTailBytes = 4096
	stderrTailLines = 5
)

// sweep handles a timerTrigger: settle completed tasks, then reconcile
// inputs nothing knows about (reconcile.go). Every step is idempotent, so
// a crash between any two steps is repaired by the next run.
func (a *app) sweep(r *http.Request, inv *invocation) error {
	ctx := r.Context()
	listed, done, failed, errs := a.settleCompleted(ctx)
	requeued := 0
	if a.reconcileDue() {
		var err error
		requeued, err = a.reconcile(ctx, inv)
		if err != nil {
			a.reconcileFailed()
			errs = append(errs, err)
		}
	}
	a.expire(ctx)
	if n := a.drainOutbox(ctx, a.log.With("function", FuncSweep)); n > 0 {
		inv.logf("sweep: %d completion events published from the outbox", n)
	}
	msg := fmt.Sprintf("sweep: %d completed tasks (%d done, %d failed), %d inputs re-enqueued", listed, done, failed, requeued)
	if listed == 0 && requeued == 0 {
		// The timer runs every few seconds: a run that found nothing is
		// not news.
		a.log.Debug(msg, "invocationId", inv.id)
	} else {
		inv.logf("%s", msg)
	}
	if err := errors.Join(errs...); err != nil {
		// The next timer run retries; failing makes the problem visible.
		return retry(err)
	}
	return nil
}

// settleCompleted settles completed tasks in rounds of at most
// FFPIPE_SWEEP_MAX_TASKS, FFPIPE_SWEEP_PARALLELISM at a time, and lists
// again while a round came back full, had no error and the run is inside
// FFPIPE_SWEEP_BUDGET: a timer that fires once a minute would otherwise
// settle at most one round a minute, whatever the pool completes. A round
// with an error ends the run (the next one retries), so a task that keeps
// failing to settle is not listed again and again.
func (a *app) settleCompleted(ctx context.Context) (listed int, done, failed int64, errs []error) {
	start := a.now()
	for {
		tasks, err := a.d.Sweeper.ListCompleted(ctx, a.cfg.BatchJob, a.cfg.SweepMaxTasks)
		switch {
		case errors.Is(err, batch.ErrJobNotFound):
			return listed, done, failed, errs // nothing dispatched yet
		case err != nil:
			return listed, done, failed, append(errs, fmt.Errorf("list completed tasks: %w", err))
		}
		var d, f atomic.Int64
		taskErrs := make([]error, len(tasks))
		parallel(len(tasks), a.cfg.SweepParallelism, func(i int) {
			ok, err := a.settle(ctx, tasks[i])
			taskErrs[i] = err
			if err == nil && ok {
				d.Add(1)
			} else if err == nil {
				f.Add(1)
			}
		})
		listed, done, failed = listed+len(tasks), done+d.Load(), failed+f.Load()
		roundErr := errors.Join(taskErrs...)
		if roundErr != nil {
			errs = append(errs, roundErr)
		}
		if roundErr != nil || len(tasks) < a.cfg.SweepMaxTasks || ctx.Err() != nil || a.now().Sub(start) >= a.cfg.SweepBudget {
			return listed, done, failed, errs
		}
	}
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
		reason := failure.UnknownTask.With("the task carries no readable request (" + errString(t.RequestErr) + ")")
		return false, a.finish(ctx, log, t, req, records.StateFailed, reason, 0)
	}
	var res *presets.Result
	if t.Success || t.ExitCode != nil && *t.ExitCode == 0 {
		r, ok, err := a.taskResult(ctx, log, t.Key)
		if err != nil {
			return false, err
		}
		if ok {
			res = &r
		}
	}
	if t.Success && res != nil && !res.OK {
		// A deterministic failure (docs/profiles.md): the wrapper exited 0
		// so that Batch would not run it again.
		code, detail := a.resultReason(ctx, log, t, *res)
		return false, a.settleFailure(ctx, log, t, req, code, detail)
	}
	if t.Success || a.onlyLogUploadFailed(ctx, t, req) {
		outs, missing, err := a.checkOutputs(ctx, t, req, res)
		if err != nil {
			return false, err
		}
		if missing != "" {
			return false, a.settleFailure(ctx, log, t, req, failure.NoOutput, "the task succeeded but "+missing)
		}
		// Every expected output is there: the input can go.
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
		if _, err := a.writeTerminal(ctx, t.Key, req, ending{State: records.StateDone, Task: &t, OutputSize: outs[0].Size, Outputs: outs}); err != nil {
			return false, err
		}
		if err := a.d.Sweeper.DeleteTask(ctx, a.cfg.BatchJob, t.Key); err != nil {
			return false, err
		}
		log.Info("task settled", "state", records.StateDone, "outputs", len(outs))
		return true, nil
	}
	code, detail := a.failureReason(ctx, log, t)
	return false, a.settleFailure(ctx, log, t, req, code, detail)
}

// settleFailure settles a failed task: retried or recorded (retryOrFail),
// unless it was a second run of work another run already finished (a
// request sent again after its work was settled; Dispatch reads no
// records). That run's failure says nothing new (its input is usually
// gone: deleted as done, or quarantined), so the first verdict stays and
// only the task goes.
func (a *app) settleFailure(ctx context.Context, log *slog.Logger, t batch.CompletedTask, req request.Request, code failure.Reason, detail string) error {
	rec, err := a.d.Records.Get(ctx, t.Key)
	if err != nil && !errors.Is(err, records.ErrNotFound) {
		return err
	}
	// The same run settled again (a crash between record and task delete)
	// carries its own end time and goes the whole way again.
	sameRun := rec.Timings.Ended == nil && t.End.IsZero() || rec.Timings.Ended != nil && rec.Timings.Ended.Equal(t.End)
	if err == nil && rec.State.Terminal() && !sameRun {
		log.Info("a second run of finished work failed; the record stays", "state", rec.State, "recorded", rec.Reason, "reason", code.With(detail))
		return a.d.Sweeper.DeleteTask(ctx, a.cfg.BatchJob, t.Key)
	}
	return a.retryOrFail(ctx, log, t, req, code, code.With(detail), rec)
}

// onlyLogUploadFailed reports a task whose ffmpeg run succeeded (exit 0)
// but that Batch failed on a file upload, while the output blob was
// written during that very run: only a log file was lost, the work is done.
// The time window keeps an output written by another version of the same
// input (another key, same output name) from counting.
func (a *app) onlyLogUploadFailed(ctx context.Context, t batch.CompletedTask, req request.Request) bool {
	if t.ExitCode == nil || *t.ExitCode != 0 || !t.UploadFailed() || t.Start.IsZero() || t.End.IsZero() {
		return false
	}
	p, err := a.d.Blobs.Properties(ctx, req.Output.Container, req.Output.Blob)
	if err != nil || p.Size == 0 {
		return false
	}
	// Last-Modified has a resolution of one second.
	return !p.LastModified.Before(t.Start.Add(-time.Second)) && !p.LastModified.After(t.End.Add(time.Second))
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

// record writes the terminal record of a completed task.
func (a *app) record(ctx context.Context, t batch.CompletedTask, req request.Request, state records.State, reason string, outSize int64) error {
	_, err := a.writeTerminal(ctx, t.Key, req, ending{State: state, Reason: reason, Task: &t, OutputSize: outSize})
	return err
}

// taskResult reads the task wrapper's verdict (presets.ResultFile) from the
// logs container, in one request (storage.Client.Tail). ok is false when
// there is none (a task made before result files, or one that ended before
// the wrapper wrote it) or it does not parse; the caller then judges by the
// exit code and the outputs. Any other read error is returned: the task
// stays for the next run, which reads the verdict again, rather than being
// judged without it.
func (a *app) taskResult(ctx context.Context, log *slog.Logger, key string) (presets.Result, bool, error) {
	b, err := a.d.Blobs.Tail(ctx, a.cfg.LogsContainer, batch.ResultBlob(key), presets.MaxResultBytes)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return presets.Result{}, false, nil
	case err != nil:
		return presets.Result{}, false, fmt.Errorf("read the result file of %s: %w", key, err)
	}
	res, err := presets.ParseResult(b)
	if err != nil {
		log.Warn("result file does not parse", "err", err)
		return presets.Result{}, false, nil
	}
	return res, true, nil
}

// resultReason explains a deterministic failure the wrapper reported: its
// code (task_failed for a code this version does not know), its message
// and the last lines of stderr.
func (a *app) resultReason(ctx context.Context, log *slog.Logger, t batch.CompletedTask, res presets.Result) (failure.Reason, string) {
	code, detail := failure.Reason(res.Code), res.Message
	if !code.Known() {
		code, detail = failure.TaskFailed, res.Code+": "+res.Message
	}
	_, stderr := batch.LogBlobs(t.Key)
	tail, err := a.d.Blobs.Tail(ctx, a.cfg.LogsContainer, stderr, stderrTailBytes)
	switch {
	case err == nil:
		if s := lastLines(string(tail), stderrTailLines); s != "" {
			detail += "; stderr: " + s
		}
	case !errors.Is(err, storage.ErrNotFound):
		log.Warn("stderr not read", "err", err)
	}
	return code, detail
}

// failureReason explains a failed task: the reason code, and a detail of
// the exit code, Batch failure info and the last lines of stderr. The code
// combines the two classifications: Batch's failure info first
// (CompletedTask.Reason), then ffmpeg's exit code and stderr
// (presets.Classify), else task_failed.
func (a *app) failureReason(ctx context.Context, log *slog.Logger, t batch.CompletedTask) (failure.Reason, string) {
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
	return classify(t, string(tail)), strings.Join(parts, "; ")
}

// classify is the reason code of a failed task (docs/reasons.md). The
// input is kept in every case; the code only says why.
func classify(t batch.CompletedTask, stderr string) failure.Reason {
	return cmp.Or(t.Reason(), presets.Classify(t.ExitCode, stderr), failure.TaskFailed)
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
