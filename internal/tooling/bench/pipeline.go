package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/storage"
	"github.com/ffpipe/ffpipe/internal/tooling/media"
	files "github.com/ffpipe/ffpipe/internal/tooling/runner"
	"github.com/ffpipe/ffpipe/internal/tooling/stack"
)

// pipe is a running stack with the clients the phases need.
type pipe struct {
	s    *stack.Stack
	cfg  config.Config
	blob *azblob.Client
	recs *records.Store
}

func (r *runner) startStack(ctx context.Context, name string, opts stack.Options) (*pipe, error) {
	opts.Dir = filepath.Join(r.o.WorkDir, name)
	opts.AppDir = r.o.AppDir
	opts.Logger = r.o.Logger.With("stack", name)
	opts.Slots = r.o.TaskSlots
	if len(r.o.Settings) > 0 {
		m := map[string]string{}
		for k, v := range opts.Settings {
			m[k] = v
		}
		for k, v := range r.o.Settings {
			m[k] = v
		}
		opts.Settings = m
	}
	t0 := time.Now()
	s, err := stack.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	p := &pipe{s: s}
	if p.cfg, err = s.Config(); err == nil {
		if p.blob, err = s.Blob(); err == nil {
			var st *storage.Client
			if st, err = storage.NewFromConnectionString(s.StorageConnectionString(), storage.Options{}); err == nil {
				p.recs = records.New(st, p.cfg.StatusContainer, nil)
			}
		}
	}
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	r.progress("stack %s up in %.1fs", name, time.Since(t0).Seconds())
	return p, nil
}

// upload puts one local file into the input container and returns its key.
func (p *pipe) upload(ctx context.Context, file, blob string) (key string, err error) {
	return p.uploadAs(ctx, file, blob, "")
}

// uploadAs is upload with the ffpipe_profile metadata when profile is set.
func (p *pipe) uploadAs(ctx context.Context, file, blob, profile string) (key string, err error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var opts *azblob.UploadFileOptions
	if profile != "" {
		opts = &azblob.UploadFileOptions{Metadata: map[string]*string{request.MetadataProfile: &profile}}
	}
	resp, err := p.blob.UploadFile(ctx, p.cfg.InputContainer, blob, f, opts)
	if err != nil {
		return "", fmt.Errorf("upload %s: %w", blob, err)
	}
	return request.Key(p.cfg.StorageAccount(), p.cfg.InputContainer, blob, string(*resp.ETag)), nil
}

// waitTerminal polls key's record every poll until it is terminal.
func (p *pipe) waitTerminal(ctx context.Context, key string, poll time.Duration) (records.Record, error) {
	for {
		rec, err := p.recs.Get(ctx, key)
		if err == nil && rec.State.Terminal() {
			return rec, nil
		}
		if err != nil && !errors.Is(err, records.ErrNotFound) && ctx.Err() != nil {
			return rec, err
		}
		select {
		case <-ctx.Done():
			return rec, fmt.Errorf("wait for %s: %w", key, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// throughputAndLatency runs the baseline, then the whole set through one
// stack, then the latency files through the same (warm) stack.
func (r *runner) throughputAndLatency(ctx context.Context) error {
	if err := r.generate(ctx); err != nil {
		return err
	}
	files := r.clipPaths()
	if err := r.baseline(ctx, files); err != nil {
		return err
	}
	p, err := r.startStack(ctx, "pipeline", stack.Options{})
	if err != nil {
		return err
	}
	defer p.s.Close()
	if err := r.warmUp(ctx, p); err != nil {
		return err
	}
	if err := r.throughput(ctx, p); err != nil {
		return err
	}
	// The machine may be shared: a second baseline after the pipeline, and
	// the ratio against the mean of both, cancel a drift in the load.
	if err := r.baseline(ctx, files); err != nil {
		return err
	}
	r.res.ThroughputRatio = round(Ratio(r.res.PipelineSeconds, r.res.BaselineSeconds), 4)
	r.res.ThroughputCPURatio = round(Ratio(r.res.PipelineCPUSeconds, r.res.BaselineCPUSeconds), 4)
	r.res.ThroughputCPURatioNoStorage = round(Ratio(r.res.PipelineCPUSeconds-r.res.PipelineCPUBySource["node"], r.res.BaselineCPUSeconds), 4)
	r.progress("throughput: pipeline %.2fs vs baseline %.2fs (mean of %v): ratio %.3f; CPU %.2fs vs %.2fs: %.3f",
		r.res.PipelineSeconds, r.res.BaselineSeconds, r.res.BaselineRuns, r.res.ThroughputRatio,
		r.res.PipelineCPUSeconds, r.res.BaselineCPUSeconds, r.res.ThroughputCPURatio)
	if err := r.latency(ctx, p); err != nil {
		return err
	}
	r.res.HandlerRSSThroughputMB = handlerHWM(p.s)
	return nil
}

// baseline runs the set with `xargs -P slots ffmpeg` semantics and adds
// the wall time to BaselineRuns; BaselineSeconds is their mean.
func (r *runner) baseline(ctx context.Context, files []string) error {
	wall, cpu, err := r.baselineRun(ctx, files, r.argv, r.o.Slots)
	if err != nil {
		return err
	}
	r.res.BaselineRuns = append(r.res.BaselineRuns, round(wall.Seconds(), 3))
	sum := 0.0
	for _, b := range r.res.BaselineRuns {
		sum += b
	}
	r.res.BaselineSeconds = round(sum/float64(len(r.res.BaselineRuns)), 3)
	r.res.BaselineCPUSeconds = round(cpu.Seconds(), 3)
	return nil
}

// baselineRun runs files through argv, slots processes at a time, and
// returns the wall time and ffmpeg's CPU.
func (r *runner) baselineRun(ctx context.Context, files []string, argv media.ArgvFunc, slots int) (wall, cpu time.Duration, err error) {
	r.progress("baseline: %d files, %d ffmpeg processes at a time …", len(files), slots)
	wall, timings, err := media.BaselineDetail(ctx, files, argv, slots)
	if err != nil {
		return 0, 0, err
	}
	for _, t := range timings {
		cpu += t.User + t.System
	}
	r.progress("baseline: %.2fs wall, %.2fs CPU", wall.Seconds(), cpu.Seconds())
	return wall, cpu, nil
}

// clipPaths are the local files of the clips.
func (r *runner) clipPaths() []string {
	out := make([]string, len(r.clips))
	for i, c := range r.clips {
		out[i] = c.Path
	}
	return out
}

// latencyOnly runs the latency phase on its own stack.
func (r *runner) latencyOnly(ctx context.Context) error {
	if err := r.generate(ctx); err != nil {
		return err
	}
	p, err := r.startStack(ctx, "latency", stack.Options{})
	if err != nil {
		return err
	}
	defer p.s.Close()
	if err := r.warmUp(ctx, p); err != nil {
		return err
	}
	if err := r.latency(ctx, p); err != nil {
		return err
	}
	r.res.HandlerRSSThroughputMB = handlerHWM(p.s)
	return nil
}

// warmUp pushes one clip through so that connections, the job and the
// nodes are warm before anything is timed.
func (r *runner) warmUp(ctx context.Context, p *pipe) error {
	t0 := time.Now()
	key, err := p.upload(ctx, r.clips[0].Path, "warmup/"+r.clips[0].Name)
	if err != nil {
		return err
	}
	rec, err := p.waitTerminal(ctx, key, 50*time.Millisecond)
	if err != nil {
		return err
	}
	if rec.State != records.StateDone {
		return fmt.Errorf("warm-up file: %s: %s", rec.State, rec.Reason)
	}
	r.progress("warm-up file done in %.2fs", time.Since(t0).Seconds())
	return nil
}

// throughput uploads every clip with Event Grid stopped (so nothing starts
// early), then starts Event Grid and waits until every output is present:
// the pipeline's time is "all uploaded" → the last task's end (its outputs
// are uploaded before it completes).
func (r *runner) throughput(ctx context.Context, p *pipe) error {
	keys, blobs, took, err := r.uploadPaused(ctx, p, "throughput")
	if err != nil {
		return err
	}
	allUploaded := time.Now()
	r.res.UploadSeconds = round(took.Seconds(), 3)
	cpu0 := stackCPUBreakdown()
	stopProfile, err := startCPUProfile(r.o.CPUProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if err := p.s.Restart(ctx, stack.EventGrid); err != nil {
		return err
	}
	r.progress("throughput: Event Grid resumed, waiting for %d outputs …", len(keys))

	// Wait for the outputs without loading the system under test: once a
	// second, Batch's task counts (the in-process stand-in, no storage
	// call); the output container is listed only when no task is waiting
	// or running. The end time comes from the records (the task's end),
	// read afterwards.
	want := map[string]bool{}
	for _, b := range blobs {
		want[request.OutputName(b, r.preset.Ext)] = true
	}
	bc, err := p.s.BatchClient()
	if err != nil {
		return err
	}
	last, lastBusy := 0, -1
	for !r.allOutputs(ctx, p, bc, want, &last, &lastBusy) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("throughput: %d of %d outputs seen: %w", last, len(want), ctx.Err())
		case <-time.After(time.Second):
		}
	}
	cpu1 := stackCPUBreakdown()
	stopProfile()
	var total time.Duration
	r.res.PipelineCPUBySource = map[string]float64{}
	for k, v := range cpu1 {
		total += v - cpu0[k]
		r.res.PipelineCPUBySource[k] = round((v - cpu0[k]).Seconds(), 3)
	}
	r.res.PipelineCPUSeconds = round(total.Seconds(), 3)
	end, audio, err := r.verifyAudioSet(ctx, p, keys, blobs)
	if err != nil {
		return fmt.Errorf("throughput: %w", err)
	}
	r.res.ThroughputVerified = len(keys)
	d := end.Sub(allUploaded)
	r.res.PipelineSeconds = round(d.Seconds(), 3)
	r.res.AudioSecondsPerWall = round(Ratio(audio.Seconds(), d.Seconds()), 2)
	r.progress("throughput: pipeline %.2fs (%d outputs verified)", d.Seconds(), r.res.ThroughputVerified)
	return nil
}

// uploadPaused uploads every clip under prefix/ with Event Grid stopped (so
// nothing starts early) and returns their keys, blob names and how long the
// uploads took. Event Grid stays stopped: the caller resumes it.
func (r *runner) uploadPaused(ctx context.Context, p *pipe, prefix string) (keys, blobs []string, took time.Duration, err error) {
	return r.uploadClips(ctx, p, prefix, r.clips, "")
}

// uploadClips is uploadPaused for clips, each with the upload's
// ffpipe_profile metadata when profile is set.
func (r *runner) uploadClips(ctx context.Context, p *pipe, prefix string, clips []media.Clip, profile string) (keys, blobs []string, took time.Duration, err error) {
	if err := p.s.Stop(stack.EventGrid, false); err != nil {
		return nil, nil, 0, err
	}
	r.progress("%s: uploading %d files (Event Grid paused) …", prefix, len(clips))
	t0 := time.Now()
	keys = make([]string, len(clips))
	blobs = make([]string, len(clips))
	errs := make([]error, len(clips))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, c := range clips {
		blobs[i] = path.Join(prefix, c.Name)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			keys[i], errs[i] = p.uploadAs(ctx, c.Path, blobs[i], profile)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, 0, err
	}
	return keys, blobs, time.Since(t0), nil
}

// verifyAudioSet waits for every key's final record, checks it is done and
// its output decodes to the clip's duration, and returns the latest task
// end and the audio time converted.
func (r *runner) verifyAudioSet(ctx context.Context, p *pipe, keys, blobs []string) (end time.Time, audio time.Duration, err error) {
	verifyDir, err := os.MkdirTemp(r.o.WorkDir, "verify-")
	if err != nil {
		return end, 0, err
	}
	defer os.RemoveAll(verifyDir)
	for i, key := range keys {
		rec, err := p.waitTerminal(ctx, key, 100*time.Millisecond)
		if err != nil {
			return end, 0, err
		}
		if rec.State != records.StateDone {
			return end, 0, fmt.Errorf("%s: %s: %s", blobs[i], rec.State, rec.Reason)
		}
		if rec.Timings.Ended == nil {
			return end, 0, fmt.Errorf("%s: record has no end time", blobs[i])
		}
		if rec.Timings.Ended.After(end) {
			end = *rec.Timings.Ended
		}
		local := filepath.Join(verifyDir, fmt.Sprintf("%03d.%s", i, r.preset.Ext))
		if err := files.Download(ctx, p.blob, p.cfg.OutputContainer, rec.Output.Blob, local); err != nil {
			return end, 0, err
		}
		if err := media.VerifyAudio(ctx, local, r.preset.Ext, r.clips[i].Spec.Duration, media.DefaultTolerance); err != nil {
			return end, 0, fmt.Errorf("output of %s: %w", blobs[i], err)
		}
		_ = os.Remove(local)
		audio += r.clips[i].Spec.Duration
	}
	return end, audio, nil
}

// allOutputs reports whether every wanted output is present. While Batch
// has tasks waiting or running it does not look (it reports their number
// when it changes); otherwise it lists the output container and reports
// the count when it changes. last and lastBusy keep those counts.
func (r *runner) allOutputs(ctx context.Context, p *pipe, bc *batch.Client, want map[string]bool, last, lastBusy *int) bool {
	if tc, err := bc.TaskCounts(ctx, p.cfg.BatchJob); err == nil && tc.Active+tc.Running > 0 {
		if busy := tc.Active + tc.Running; busy != *lastBusy {
			r.progress("throughput: %d tasks waiting or running, %d completed", busy, tc.Completed)
			*lastBusy = busy
		}
		return false
	}
	n, err := countOutputs(ctx, p, want)
	if err != nil {
		return false
	}
	if n != *last && n != len(want) {
		r.progress("throughput: %d/%d outputs", n, len(want))
	}
	*last = n
	return n == len(want)
}

func countOutputs(ctx context.Context, p *pipe, want map[string]bool) (int, error) {
	n := 0
	pager := p.blob.NewListBlobsFlatPager(p.cfg.OutputContainer, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return n, err
		}
		for _, b := range page.Segment.BlobItems {
			if b.Name != nil && want[*b.Name] {
				n++
			}
		}
	}
	return n, nil
}

// latency sends files one at a time and measures upload end → task end;
// overhead subtracts ffmpeg's own time on the same file, measured alone.
func (r *runner) latency(ctx context.Context, p *pipe) error {
	n := r.o.LatencyFiles
	r.progress("latency: %d files, one at a time …", n)
	lat := make([]FileLatency, n)
	for i := range n {
		c := r.clips[i%len(r.clips)]
		blob := fmt.Sprintf("latency/%03d-%s", i, c.Name)
		key, err := p.upload(ctx, c.Path, blob)
		uploaded := time.Now()
		if err != nil {
			return err
		}
		rec, err := p.waitTerminal(ctx, key, 50*time.Millisecond)
		if err != nil {
			return err
		}
		if rec.State != records.StateDone || rec.Timings.Ended == nil {
			return fmt.Errorf("latency: %s: %s: %s", blob, rec.State, rec.Reason)
		}
		lat[i] = FileLatency{Blob: blob, LatencyMs: round(ms(rec.Timings.Ended.Sub(uploaded)), 1)}
		if t := rec.Timings.Dispatched; t != nil {
			lat[i].DispatchedMs = round(ms(t.Sub(uploaded)), 1)
		}
		if t := rec.Timings.Started; t != nil {
			lat[i].StartedMs = round(ms(t.Sub(uploaded)), 1)
		}
		// ffmpeg alone on the same file right after, under the same load
		// (the machine may be shared): the overhead is the difference.
		t, err := media.TimeFFmpeg(ctx, c.Path, r.argv)
		if err != nil {
			return err
		}
		lat[i].FFmpegMs = round(ms(t.Wall), 1)
		lat[i].OverheadMs = round(lat[i].LatencyMs-lat[i].FFmpegMs, 1)
	}
	var l, o, f []float64
	for _, x := range lat {
		l, o, f = append(l, x.LatencyMs), append(o, x.OverheadMs), append(f, x.FFmpegMs)
	}
	r.res.Latencies = lat
	r.res.LatencyP50Ms, r.res.LatencyP95Ms = Percentile(l, 50), Percentile(l, 95)
	r.res.OverheadP50Ms, r.res.OverheadP95Ms = Percentile(o, 50), Percentile(o, 95)
	r.res.FFmpegP50Ms = Percentile(f, 50)
	r.progress("latency: p50 %.0f ms, p95 %.0f ms; ffmpeg p50 %.0f ms; overhead p50 %.0f ms, p95 %.0f ms",
		r.res.LatencyP50Ms, r.res.LatencyP95Ms, r.res.FFmpegP50Ms, r.res.OverheadP50Ms, r.res.OverheadP95Ms)
	return nil
}
