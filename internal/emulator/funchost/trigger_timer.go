package funchost

import (
	"github.com/ffpipe/ffpipe/internal/fsutil"

	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// prepareTrigger resolves %Setting% expressions and parses trigger config.
func (h *Host) prepareTrigger(fn *function) error {
	switch fn.triggerType() {
	case "timertrigger":
		expr, err := resolve(fn.Trigger.Schedule, h.lookup)
		if err != nil {
			return fmt.Errorf("schedule: %w", err)
		}
		if strings.Count(expr, ":") == 2 && !strings.Contains(expr, " ") {
			d, err := parseTimeSpan(expr)
			if err != nil || d <= 0 {
				return fmt.Errorf("schedule %q: %w", expr, ErrSchedule)
			}
			fn.interval = d
			return nil
		}
		s, err := ParseSchedule(expr)
		if err != nil {
			return err
		}
		if s.Next(time.Now()).IsZero() {
			return fmt.Errorf("schedule %q never fires: %w", expr, ErrSchedule)
		}
		fn.schedule = s
	case "servicebustrigger":
		return h.prepareServiceBus(fn)
	case "eventgridtrigger":
		// Nothing to resolve: events arrive through the webhook.
	}
	return nil
}

func (h *Host) startTriggers(ctx context.Context) {
	for _, fn := range h.functions {
		switch fn.triggerType() {
		case "timertrigger":
			h.triggers.Add(1)
			go func() { defer h.triggers.Done(); h.runTimer(ctx, fn) }()
		case "servicebustrigger":
			h.triggers.Add(1)
			go func() { defer h.triggers.Done(); h.runServiceBus(ctx, fn) }()
		}
	}
}

// scheduleStatus is the timer monitor's record (ScheduleStatus).
type scheduleStatus struct {
	Last        time.Time `json:"last"`
	Next        time.Time `json:"next"`
	LastUpdated time.Time `json:"lastUpdated"`
}

func (fn *function) nextOccurrence(after time.Time) time.Time {
	if fn.interval > 0 {
		return after.Add(fn.interval)
	}
	return fn.schedule.Next(after)
}

// useMonitor follows the extension: default on unless the schedule fires
// more often than once a minute.
func (fn *function) useMonitor(now time.Time) bool {
	if fn.Trigger.UseMonitor != nil {
		return *fn.Trigger.UseMonitor
	}
	a := fn.nextOccurrence(now)
	b := fn.nextOccurrence(a)
	return b.Sub(a) >= time.Minute
}

func (h *Host) timerStatusPath(fn *function) string {
	if h.opts.DataDir == "" {
		return ""
	}
	return filepath.Join(h.opts.DataDir, "timers", fn.Name+".status.json")
}

func (h *Host) loadTimerStatus(fn *function) *scheduleStatus {
	p := h.timerStatusPath(fn)
	if p == "" {
		return nil
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	var st scheduleStatus
	if json.Unmarshal(raw, &st) != nil {
		return nil
	}
	return &st
}

func (h *Host) saveTimerStatus(fn *function, st *scheduleStatus) {
	p := h.timerStatusPath(fn)
	if p == "" {
		return
	}
	if err := fsutil.WriteFileAtomic(p, marshal(st)); err != nil {
		h.log.Error("timer: save schedule status", "function", fn.Name, "err", err)
	}
}

// runTimer fires the function on its schedule, one invocation at a time.
func (h *Host) runTimer(ctx context.Context, fn *function) {
	now := time.Now().UTC()
	monitor := fn.useMonitor(now)
	var status *scheduleStatus
	pastDue := false
	if monitor {
		status = h.loadTimerStatus(fn)
		if status == nil {
			status = &scheduleStatus{Next: fn.nextOccurrence(now), LastUpdated: now}
		} else if !status.Next.IsZero() && status.Next.Before(now) {
			pastDue = true
		}
		h.saveTimerStatus(fn, status)
	}
	log := h.log.With("function", fn.Name)
	if pastDue || fn.Trigger.RunOnStartup {
		log.Info("timer: invoking at startup", "isPastDue", pastDue, "runOnStartup", fn.Trigger.RunOnStartup)
		status = h.fireTimer(fn, status, pastDue, now)
	}
	for {
		next := fn.nextOccurrence(time.Now().UTC())
		if next.IsZero() {
			log.Warn("timer: schedule has no further occurrence; stopping", "schedule", fn.Trigger.Schedule)
			return
		}
		if status != nil {
			status.Next = next
		}
		log.Debug("timer: next occurrence", "next", next)
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		status = h.fireTimer(fn, status, false, next)
	}
}

// fireTimer invokes once; the TimerInfo carries the status before this run
// (Last = previous occurrence, Next = this occurrence), then the status moves on.
func (h *Host) fireTimer(fn *function, status *scheduleStatus, pastDue bool, occurrence time.Time) *scheduleStatus {
	info := map[string]any{
		"Schedule":       map[string]any{"AdjustForDST": true},
		"ScheduleStatus": nil,
		"IsPastDue":      pastDue,
	}
	if status != nil {
		last := "0001-01-01T00:00:00"
		if !status.Last.IsZero() {
			last = status.Last.UTC().Format("2006-01-02T15:04:05.9999999-07:00")
		}
		info["ScheduleStatus"] = map[string]string{
			"Last":        last,
			"Next":        status.Next.UTC().Format("2006-01-02T15:04:05.9999999-07:00"),
			"LastUpdated": netDateTimeOffset(status.LastUpdated),
		}
	}
	data := map[string]json.RawMessage{fn.Trigger.Name: encObject(info)}
	// A run that started finishes during Close's drain.
	_, _ = h.invoke(h.invokeCtx, fn, data, metadata{})
	if status == nil {
		return nil
	}
	now := time.Now().UTC()
	st := &scheduleStatus{Last: occurrence, Next: fn.nextOccurrence(now), LastUpdated: now}
	h.saveTimerStatus(fn, st)
	return st
}
