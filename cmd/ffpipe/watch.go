package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/ffpipe/ffpipe/internal/batch"
)

// progressSource is what the watcher asks: the running tasks and how far
// each is (*batch.Client).
type progressSource interface {
	Running(ctx context.Context, jobID string, max int) ([]batch.RunningTask, error)
	Progress(ctx context.Context, jobID, key string, started time.Time) (batch.Progress, error)
}

var _ progressSource = (*batch.Client)(nil)

// watchProgress draws one bar per running file (percent of its source's
// duration, with the ETA) and refreshes them every period until ctx ends,
// or, with untilIdle, until no task has run for two periods. A file whose
// task leaves the running state is completed (its bar drops off).
func watchProgress(ctx context.Context, src progressSource, jobID string, w io.Writer, period time.Duration, untilIdle bool) error {
	return drawProgress(ctx, src, jobID, newBars(ctx, w, period), period, untilIdle)
}

// newBars is the bar container: lines written to it print above the bars.
func newBars(ctx context.Context, w io.Writer, period time.Duration) *mpb.Progress {
	return mpb.NewWithContext(ctx, mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithRefreshRate(period/2), mpb.WithAutoRefresh())
}

// drawProgress is watchProgress on an existing bar container.
func drawProgress(ctx context.Context, src progressSource, jobID string, p *mpb.Progress, period time.Duration, untilIdle bool) error {
	bars := map[string]*mpb.Bar{}
	var etas sync.Map // key → time.Duration
	idle := 0
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		running, err := src.Running(ctx, jobID, 0)
		if err != nil && !errors.Is(err, batch.ErrJobNotFound) && ctx.Err() == nil {
			p.Shutdown()
			return fmt.Errorf("watch: %w", err)
		}
		seen := map[string]bool{}
		for _, rt := range running {
			seen[rt.Key] = true
			b, ok := bars[rt.Key]
			if !ok {
				name := rt.Request.Source.Blob
				if name == "" {
					name = rt.Key
				}
				key := rt.Key
				b = p.AddBar(100, mpb.BarRemoveOnComplete(),
					mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR)),
					mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace), decor.Any(func(decor.Statistics) string {
						if v, ok := etas.Load(key); ok && v.(time.Duration) > 0 {
							return "ETA " + v.(time.Duration).String()
						}
						return ""
					}, decor.WCSyncSpace)))
				bars[rt.Key] = b
			}
			if pr, err := src.Progress(ctx, jobID, rt.Key, rt.Started); err == nil {
				b.SetCurrent(int64(min(pr.Percent, 99)))
				etas.Store(rt.Key, pr.ETA)
			}
		}
		for key, b := range bars {
			if !seen[key] {
				b.SetCurrent(100) // the task left the running state
				delete(bars, key)
			}
		}
		if len(running) == 0 {
			idle++
		} else {
			idle = 0
		}
		if untilIdle && idle >= 2 {
			p.Wait()
			return nil
		}
		select {
		case <-ctx.Done():
			p.Shutdown()
			return nil
		case <-t.C:
		}
	}
}
