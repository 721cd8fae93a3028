// Package runner pushes a set of local media files through a running local
// stack the way a user does (upload into the input container), follows them
// to a terminal state, verifies every output with ffprobe and reports per
// file and in total. `ffpipe demo` (make run) and the benchmarks use it.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/storage"
	"github.com/ffpipe/ffpipe/internal/tooling/media"
	"github.com/ffpipe/ffpipe/internal/tooling/stack"
)

// File is one input.
type File struct {
	// Path of the local file.
	Path string
	// Blob is the name in the input container (default: Prefix + base name).
	Blob string
	// AudioDuration is what the output must last (0: measured with ffprobe).
	AudioDuration time.Duration
	// Profile is set as the blob's ffpipe_profile metadata (as `ffpipe
	// upload --profile` does); "" leaves the choice to the routes and the
	// default.
	Profile string
}

// Options configure Run.
type Options struct {
	Files []File
	// Prefix is put before base names ("demo/").
	Prefix string
	// Progress receives a line whenever the counts change (nil: silent).
	Progress io.Writer
	// Verify downloads and checks every output (codec mp3, duration ±0.1 s).
	Verify bool
	// Parallel uploads (default 4).
	Parallel int
	// Poll is the status polling period (default 100 ms).
	Poll time.Duration
}

// Result is one file's outcome.
type Result struct {
	File          string
	Blob          string
	Key           string
	Size          int64
	AudioDuration time.Duration
	State         records.State
	Reason        string
	Output        string
	// Profile is the profile the record names; Outputs every output it
	// lists (done only).
	Profile string
	Outputs []records.OutputInfo
	// UploadStart and Uploaded bracket the upload; Finished is when the
	// output was complete (the task's end) or the record turned terminal.
	UploadStart, Uploaded, Finished time.Time
	// Seen is when the runner saw the terminal record.
	Seen time.Time
	// Verify is the output check's error (nil when valid or not checked).
	Verify error
}

// Latency is upload → output complete.
func (r Result) Latency() time.Duration { return r.Finished.Sub(r.Uploaded) }

// OK reports a verified success.
func (r Result) OK() bool { return r.State == records.StateDone && r.Verify == nil }

// Report is the whole run.
type Report struct {
	Results []Result
	// Start is the first upload's start, AllUploaded the last upload's end,
	// End the last terminal result.
	Start, AllUploaded, End time.Time
}

// Failed counts results that are not verified successes.
func (r Report) Failed() int {
	n := 0
	for _, x := range r.Results {
		if !x.OK() {
			n++
		}
	}
	return n
}

// AudioTotal sums the audio durations.
func (r Report) AudioTotal() time.Duration {
	var d time.Duration
	for _, x := range r.Results {
		d += x.AudioDuration
	}
	return d
}

// Run uploads every file, waits until each has a terminal record, and
// verifies the outputs.
func Run(ctx context.Context, s *stack.Stack, opts Options) (Report, error) {
	if len(opts.Files) == 0 {
		return Report{}, errors.New("run: no files")
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	if opts.Poll <= 0 {
		opts.Poll = 100 * time.Millisecond
	}
	cfg, err := s.Config()
	if err != nil {
		return Report{}, err
	}
	blob, err := s.Blob()
	if err != nil {
		return Report{}, err
	}
	st, err := storage.NewFromConnectionString(s.StorageConnectionString(), storage.Options{})
	if err != nil {
		return Report{}, err
	}
	recs := records.New(st, cfg.StatusContainer, nil)

	results := make([]Result, len(opts.Files))
	for i, f := range opts.Files {
		name := f.Blob
		if name == "" {
			name = path.Join(opts.Prefix, filepath.Base(f.Path))
		}
		d := f.AudioDuration
		if d == 0 {
			if d, err = media.ExpectedAudioDuration(ctx, f.Path); err != nil {
				return Report{}, fmt.Errorf("run: %s: %w", f.Path, err)
			}
		}
		results[i] = Result{File: filepath.Base(f.Path), Blob: name, AudioDuration: d}
	}
	var rep Report
	rep.Start = time.Now()
	if err := uploadAll(ctx, blob, cfg, opts, results); err != nil {
		return Report{}, err
	}
	for _, r := range results {
		if r.Uploaded.After(rep.AllUploaded) {
			rep.AllUploaded = r.Uploaded
		}
	}
	if err := follow(ctx, s, recs, cfg, opts, results); err != nil {
		return Report{}, err
	}
	for _, r := range results {
		if r.Seen.After(rep.End) {
			rep.End = r.Seen
		}
	}
	if opts.Verify {
		verifyAll(ctx, blob, cfg, results)
	}
	rep.Results = results
	return rep, nil
}

func uploadAll(ctx context.Context, c *azblob.Client, cfg config.Config, opts Options, results []Result) error {
	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	errs := make([]error, len(results))
	for i := range results {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = uploadOne(ctx, c, cfg, opts.Files[i], &results[i])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func uploadOne(ctx context.Context, c *azblob.Client, cfg config.Config, file File, r *Result) error {
	f, err := os.Open(file.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	r.Size = fi.Size()
	r.UploadStart = time.Now()
	var opts *azblob.UploadFileOptions
	if file.Profile != "" {
		opts = &azblob.UploadFileOptions{Metadata: map[string]*string{request.MetadataProfile: &file.Profile}}
	}
	resp, err := c.UploadFile(ctx, cfg.InputContainer, r.Blob, f, opts)
	if err != nil {
		return fmt.Errorf("upload %s: %w", r.Blob, err)
	}
	r.Uploaded = time.Now()
	r.Key = request.Key(cfg.StorageAccount(), cfg.InputContainer, r.Blob, string(*resp.ETag))
	return nil
}

// follow polls the records until every file is terminal, printing progress.
func follow(ctx context.Context, s *stack.Stack, recs *records.Store, cfg config.Config, opts Options, results []Result) error {
	bc, err := s.BatchClient()
	if err != nil {
		return err
	}
	tick := time.NewTicker(opts.Poll)
	defer tick.Stop()
	lastLine := ""
	pending := len(results)
	for pending > 0 {
		counts := map[records.State]int{}
		pending = 0
		for i := range results {
			r := &results[i]
			if !r.Seen.IsZero() {
				counts[r.State]++
				continue
			}
			rec, err := recs.Get(ctx, r.Key)
			switch {
			case errors.Is(err, records.ErrNotFound):
				pending++
				counts["uploaded"]++
				continue
			case err != nil:
				pending++
				continue // transient (e.g. Azurite restarting): try again
			}
			r.State, r.Reason = rec.State, rec.Reason
			if !rec.State.Terminal() {
				pending++
				counts[rec.State]++
				continue
			}
			r.Seen = time.Now()
			r.Output, r.Profile, r.Outputs = rec.Output.Blob, rec.Preset, rec.Outputs
			r.Finished = r.Seen
			if rec.Timings.Ended != nil && rec.Timings.Ended.After(r.Uploaded) {
				r.Finished = *rec.Timings.Ended
			}
			counts[rec.State]++
		}
		if opts.Progress != nil {
			var tasks *batch.TaskCounts
			if tc, err := bc.TaskCounts(ctx, cfg.BatchJob); err == nil {
				tasks = &tc
			}
			line := progressLine(len(results), counts, tasks)
			if line != lastLine {
				fmt.Fprintln(opts.Progress, time.Now().Format("15:04:05.0"), line)
				lastLine = line
			}
		}
		if pending == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d of %d files: %w", pending, len(results), ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// progressLine: records tell the settled files from the rest; Batch
// counts the tasks among the rest (Dispatch writes no record, so a file
// in a task still has its queued record, or none).
func progressLine(total int, c map[records.State]int, tasks *batch.TaskCounts) string {
	inBatch, run := "?", "?"
	if tasks != nil {
		inBatch, run = fmt.Sprint(tasks.Active+tasks.Running+tasks.Completed), fmt.Sprint(tasks.Running)
	}
	failed := c[records.StateFailed] + c[records.StateRejected] + c[records.StateBadRequest] + c[records.StateInputMissing]
	return fmt.Sprintf(" files %d · in progress %d (Batch tasks %s, running %s) · done %d · failed %d",
		total, c["uploaded"]+c[records.StateQueued]+c[records.StateDispatched], inBatch, run, c[records.StateDone], failed)
}

func verifyAll(ctx context.Context, c *azblob.Client, cfg config.Config, results []Result) {
	dir, err := os.MkdirTemp("", "ffpipe-verify-")
	if err != nil {
		for i := range results {
			results[i].Verify = err
		}
		return
	}
	defer os.RemoveAll(dir)
	for i := range results {
		r := &results[i]
		if r.State != records.StateDone {
			continue
		}
		if len(r.Outputs) > 1 || len(r.Outputs) == 1 && path.Ext(r.Output) != ".mp3" {
			r.Verify = verifyOutputs(ctx, c, cfg, r, filepath.Join(dir, strconv.Itoa(i)))
			continue
		}
		local := filepath.Join(dir, fmt.Sprintf("%d.mp3", i))
		r.Verify = Download(ctx, c, cfg.OutputContainer, r.Output, local)
		if r.Verify == nil {
			r.Verify = media.VerifyAudio(ctx, local, "mp3", r.AudioDuration, media.DefaultTolerance)
		}
	}
}

// Download copies a blob to a local file.
func Download(ctx context.Context, c *azblob.Client, container, name, local string) error {
	f, err := os.Create(local)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := c.DownloadFile(ctx, container, name, f, nil); err != nil {
		return fmt.Errorf("download %s/%s: %w", container, name, err)
	}
	return nil
}

// WriteTable prints one row per file and the totals.
func (r Report) WriteTable(w io.Writer) error {
	rows := append([]Result(nil), r.Results...)
	sort.Slice(rows, func(i, j int) bool { return rows[i].Blob < rows[j].Blob })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "FILE\tSIZE\tAUDIO\tLATENCY\tRESULT\t")
	for _, x := range rows {
		res := "ok"
		switch {
		case x.State != records.StateDone:
			res = string(x.State) + ": " + x.Reason
		case x.Verify != nil:
			res = "invalid output: " + x.Verify.Error()
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1fs\t%dms\t%s\t\n", x.Blob, humanBytes(x.Size), x.AudioDuration.Seconds(), x.Latency().Milliseconds(), strings.ReplaceAll(res, "\n", " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	wall := r.End.Sub(r.Start)
	audio := r.AudioTotal()
	fmt.Fprintf(w, "\n%d files, %d ok, %d failed · %.1fs of audio in %.1fs wall · %.1f files/min · %.1f× realtime\n",
		len(r.Results), len(r.Results)-r.Failed(), r.Failed(), audio.Seconds(), wall.Seconds(),
		float64(len(r.Results))/wall.Minutes(), audio.Seconds()/wall.Seconds())
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
