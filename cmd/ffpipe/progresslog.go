package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
)

// isTerminal reports whether w is a terminal. Bars redraw in place only
// there; written to a pipe, a log file or CI they would print a line per
// refresh, so the plain views below replace them.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// taskName is the name a running file is shown by: its source blob, else its key.
func taskName(rt batch.RunningTask) string {
	if rt.Request.Source.Blob != "" {
		return rt.Request.Source.Blob
	}
	return rt.Key
}

// logProgress is the progress view for a writer that is not a terminal:
// a line when a file starts running, one each time it passes a quarter of
// its source's duration (with the ETA), and one when its task leaves the
// running state. It polls every period until ctx ends. An error reading
// the tasks is printed once, until it changes.
func logProgress(ctx context.Context, src progressSource, jobID string, w io.Writer, period time.Duration) {
	quarters := map[string]int{} // key → quarters reported
	names := map[string]string{}
	lastErr := ""
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		running, err := src.Running(ctx, jobID, 0)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !errors.Is(err, batch.ErrJobNotFound):
			if err.Error() != lastErr {
				fmt.Fprintf(w, "progress: cannot read the running tasks: %v\n", err)
				lastErr = err.Error()
			}
		default:
			lastErr = ""
			logStep(ctx, src, jobID, w, running, quarters, names)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// logStep prints what changed since the last poll.
func logStep(ctx context.Context, src progressSource, jobID string, w io.Writer, running []batch.RunningTask, quarters map[string]int, names map[string]string) {
	seen := map[string]bool{}
	for _, rt := range running {
		seen[rt.Key] = true
		if _, ok := names[rt.Key]; !ok {
			names[rt.Key] = taskName(rt)
			fmt.Fprintf(w, "progress: %s running\n", names[rt.Key])
		}
		pr, err := src.Progress(ctx, jobID, rt.Key, rt.Started)
		if err != nil {
			continue
		}
		if q := min(int(pr.Percent)/25, 3); q > quarters[rt.Key] {
			quarters[rt.Key] = q
			eta := ""
			if pr.ETA > 0 {
				eta = ", ETA " + pr.ETA.Round(time.Second).String()
			}
			fmt.Fprintf(w, "progress: %s %d %%%s\n", names[rt.Key], q*25, eta)
		}
	}
	for key, name := range names {
		if !seen[key] {
			fmt.Fprintf(w, "progress: %s task ended\n", name)
			delete(names, key)
			delete(quarters, key)
		}
	}
}

// logStatus is `ffpipe status --watch` on a writer that is not a
// terminal: the summary's text view every `every`, and logProgress's lines
// between them, until ctx ends.
func logStatus(ctx context.Context, summarize summarizer, src progressSource, jobID string, w io.Writer, period, every time.Duration) error {
	lw := &lineWriter{w: w}
	done := make(chan struct{})
	go func() {
		defer close(done)
		logProgress(ctx, src, jobID, lw, period)
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if block, ok := summaryBlock(ctx, summarize, every); ok {
			_, _ = lw.Write([]byte(block))
		}
		select {
		case <-ctx.Done():
			<-done
			return nil
		case <-t.C:
		}
	}
}

// summaryBlock is the summary's text view as --watch shows it, ending in
// the time it was read; a summary that cannot be read is the error and
// when it is tried again. ok is false once ctx has ended.
func summaryBlock(ctx context.Context, summarize summarizer, every time.Duration) (string, bool) {
	var b strings.Builder
	view, err := summarize(ctx)
	switch {
	case ctx.Err() != nil:
		return "", false
	case err != nil:
		fmt.Fprintf(&b, "status: %v (trying again in %v)\n", err, every)
	default:
		writeSummary(&b, view)
	}
	b.WriteString("updated " + time.Now().Format("15:04:05") + "\n")
	return b.String(), true
}

// lineWriter serializes writes, so that a block of lines from one writer
// never interleaves with a line from another.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
