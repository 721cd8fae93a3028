package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/ffpipe/ffpipe/handlers"
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
				name, key := taskName(rt), rt.Key
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

// panel is a block of text kept above the progress bars and redrawn in
// place: one bar without a bar (BarFillerTrim, no decorators) whose rows
// are the lines. A block with another number of lines replaces the bar;
// the replaced one draws empty rows until mpb drops it.
type panel struct {
	p *mpb.Progress

	mu    sync.Mutex
	lines []string
	bar   *mpb.Bar
	gen   int // the current bar's generation
}

// set shows lines from the next refresh on.
func (pl *panel) set(lines []string) error {
	if len(lines) == 0 {
		lines = []string{""}
	}
	pl.mu.Lock()
	same := pl.bar != nil && len(pl.lines) == len(lines)
	pl.lines = lines
	old := pl.bar
	if !same {
		pl.gen++ // a new bar; the old one goes blank
	}
	gen := pl.gen
	pl.mu.Unlock()
	if same {
		return nil
	}
	if old != nil {
		old.Abort(true)
	}
	row := func(i int, last bool) mpb.BarFiller {
		return mpb.BarFillerFunc(func(w io.Writer, _ decor.Statistics) error {
			pl.mu.Lock()
			defer pl.mu.Unlock()
			s := ""
			if gen == pl.gen && i < len(pl.lines) {
				s = pl.lines[i]
			}
			if !last {
				s += "\n" // an extender row ends its own line; mpb ends the bar's
			}
			_, err := io.WriteString(w, s)
			return err
		})
	}
	extra := make([]mpb.BarFiller, 0, len(lines)-1)
	for i := 1; i < len(lines); i++ {
		extra = append(extra, row(i, false))
	}
	bar, err := pl.p.Add(0, row(0, true), mpb.BarFillerTrim(), mpb.BarPriority(-1), mpb.BarBtmExtender(extra...))
	if err != nil {
		return err
	}
	pl.mu.Lock()
	pl.bar = bar
	pl.mu.Unlock()
	return nil
}

// summarizer reads the status summary the panel shows.
type summarizer func(ctx context.Context) (handlers.Summary, error)

// watchStatus is `ffpipe status --watch`: the summary's text view
// (writeSummary: counts, the last hour's throughput, failures by reason),
// read again every `every`, above a progress bar per running file,
// refreshed every period, until ctx ends. A summary that cannot be read
// shows the error in its place and is tried again.
func watchStatus(ctx context.Context, summarize summarizer, src progressSource, jobID string, w io.Writer, period, every time.Duration) error {
	p := newBars(ctx, w, period)
	pl := &panel{p: p}
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			block, ok := summaryBlock(pctx, summarize, every)
			if !ok {
				return
			}
			if pl.set(strings.Split(strings.TrimSuffix(block, "\n"), "\n")) != nil {
				return // the bars have shut down
			}
			select {
			case <-pctx.Done():
				return
			case <-t.C:
			}
		}
	})
	err := drawProgress(ctx, src, jobID, p, period, false)
	stop()
	wg.Wait()
	return err
}
