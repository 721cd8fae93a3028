package handlers

import (
	"context"
	"fmt"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
)

// ending is how the life of a key ends: the terminal record's state and
// reason ("" for done; otherwise a failure.Reason and its detail, as
// failure.Reason.With writes them), and what the writer knows of it.
type ending struct {
	State  records.State
	Reason string
	// Task is the completed task Sweep settles; nil when the work ends
	// before a task ran (a refusal, or Batch rejecting the task).
	Task *batch.CompletedTask
	// OutputSize is the verified output's size (done only).
	OutputSize int64
	// Outputs are every verified output (done only).
	Outputs []records.OutputInfo
	// Event is the blob-created event's time, when an event started it.
	Event time.Time
}

// writeTerminal writes the terminal record of key: the one place a record
// reaches a terminal state. records.State.Replaces keeps a verdict already
// reached; the record as stored is returned.
func (a *app) writeTerminal(ctx context.Context, key string, req request.Request, e ending) (records.Record, error) {
	now := a.now()
	rec, err := a.d.Records.Update(ctx, key, func(old records.Record, _ bool) records.Record {
		r := terminalRecord(old, req, e, now)
		if t := e.Task; t != nil {
			if c, ok := records.NewCost(t.Start, t.End, t.RequiredSlots, a.cfg.TaskMaxSlots, a.prices()); ok {
				r.Cost = &c
			}
		}
		return r
	})
	if err != nil {
		return records.Record{}, fmt.Errorf("write %s record %s: %w", e.State, key, err)
	}
	// The record first, then its event (again, if this is a re-run: the
	// same id, which the topic drops as a duplicate).
	if err := a.publishEnd(ctx, rec); err != nil {
		return rec, err
	}
	return rec, nil
}

// terminalRecord derives the terminal record from the key's old record
// (zero when none), the request and the ending, at time now.
func terminalRecord(old records.Record, req request.Request, e ending, now time.Time) records.Record {
	r := recordFrom(old, req)
	r.State, r.Reason = e.State, e.Reason
	if e.OutputSize > 0 {
		r.Output.Size = e.OutputSize
	}
	if len(e.Outputs) > 0 {
		r.Outputs = e.Outputs
	}
	if r.Timings.Event == nil {
		r.Timings.Event = tp(e.Event)
	}
	t := e.Task
	if t == nil {
		// Nothing ran: the work ends now.
		r.Timings.Ended = tp(now)
		return r
	}
	if t.ExitCode != nil {
		code := *t.ExitCode
		r.ExitCode = &code
	}
	r.Attempts = max(r.Attempts, t.RetryCount+1)
	if r.Timings.Enqueued == nil {
		// A request sent straight to the queue has no queued record: the
		// task carries its message's enqueued time. A time already
		// recorded (OnBlobCreated's, or the first of several dispatches)
		// stays.
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
}
