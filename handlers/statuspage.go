package handlers

import (
	"context"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/records"
)

// RunningLister lists the running tasks for the Status page (*batch.Client).
type RunningLister interface {
	Running(ctx context.Context, jobID string, max int) ([]batch.RunningTask, error)
}

var _ RunningLister = (*batch.Client)(nil)

const (
	// statusRunning bounds the running files the page shows with a bar.
	statusRunning = 20
	// downloadTTL is the life of an output's download link: a read-only
	// SAS for that one blob (user delegation in Azure).
	downloadTTL = 15 * time.Minute
	// refreshSeconds is how often the page reloads itself.
	refreshSeconds = 10
)

// running is the page's list of running files with their progress: the
// tasks Batch runs now, shown as InFlight shows one key.
func (a *app) running(ctx context.Context) []records.Record {
	rl, ok := a.d.Tasks.(RunningLister)
	if !ok {
		return nil
	}
	tasks, err := rl.Running(ctx, a.cfg.BatchJob, statusRunning)
	if err != nil {
		return nil
	}
	out := make([]records.Record, 0, len(tasks))
	for _, t := range tasks {
		r := recordFrom(records.Record{}, t.Request).InFlight(t.Key, t.State, t.Created, t.Started)
		if p, err := a.d.Tasks.Progress(ctx, a.cfg.BatchJob, t.Key, t.Started); err == nil {
			r.Progress = progressView(p)
		}
		out = append(out, r)
	}
	return out
}

// progressView is a task's progress as Status shows it (hundredths).
func progressView(p batch.Progress) *records.Progress {
	return &records.Progress{Percent: round2(p.Percent), DoneSeconds: round2(p.DoneSeconds),
		DurationSeconds: round2(p.DurationSeconds), ETASeconds: p.ETA.Seconds()}
}

// filterRecent keeps the recent records in state (any when "") whose
// source or output name contains name (case-insensitive).
func filterRecent(rs []records.Record, state, name string) []records.Record {
	name = strings.ToLower(name)
	return slices.DeleteFunc(slices.Clone(rs), func(r records.Record) bool {
		if state != "" && string(r.State) != state {
			return true
		}
		return name != "" && !strings.Contains(strings.ToLower(r.Source.Blob), name) && !strings.Contains(strings.ToLower(r.Output.Blob), name)
	})
}

// ReasonCount is how many of the recent failures have one reason code.
type ReasonCount struct {
	Reason string `json:"reason"`
	Count  int    `json:"count"`
}

// failuresByReason groups the recent records that did not end done by
// their reason code (Record.FailureCode, as the index counts them), most
// frequent first.
func failuresByReason(rs []records.Record) []ReasonCount {
	n := map[string]int{}
	for _, r := range rs {
		if c := r.FailureCode(); c != "" {
			n[c]++
		}
	}
	out := make([]ReasonCount, 0, len(n))
	for c, k := range n {
		out = append(out, ReasonCount{c, k})
	}
	slices.SortFunc(out, func(a, b ReasonCount) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	return out
}

// downloads signs a short-lived read-only link for the output of each
// done record (key → URL); a link that cannot be signed is left out.
func (a *app) downloads(ctx context.Context, rs []records.Record) map[string]string {
	out := map[string]string{}
	for _, r := range rs {
		if r.State != records.StateDone || r.Output.Blob == "" {
			continue
		}
		if u, err := a.d.SAS.ReadURL(ctx, r.Output.Container, r.Output.Blob, downloadTTL); err == nil {
			out[r.Key] = u
		}
	}
	return out
}

// pageQuery keeps the page's query (the function key among it) for its
// links and its filter form.
func pageQuery(q url.Values) (code, state, name string) {
	return q.Get("code"), q.Get("state"), q.Get("name")
}

// timingLine shows a record's moments as seconds after it was queued:
// "0 → 1.2 → 3.0 → 9.8 → 10.4 s" (— for a step not reached).
func timingLine(t records.Timings) string {
	start := t.Enqueued
	if start == nil {
		start = t.Dispatched
	}
	if start == nil {
		return ""
	}
	parts := make([]string, 0, 5)
	for _, m := range []*time.Time{t.Enqueued, t.Dispatched, t.Started, t.Ended, t.Swept} {
		if m == nil {
			parts = append(parts, "—")
			continue
		}
		parts = append(parts, strconv.FormatFloat(m.Sub(*start).Seconds(), 'f', 1, 64))
	}
	return strings.Join(parts, " → ") + " s"
}
