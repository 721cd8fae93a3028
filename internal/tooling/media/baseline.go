package media

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Timing is one ffmpeg run as the OS saw it.
type Timing struct {
	// Wall is start to exit.
	Wall time.Duration
	// User and System are the CPU times of the ffmpeg process.
	User, System time.Duration
}

// ArgvFunc returns ffmpeg's arguments for one input file and an output
// path. out has no extension: append the one the muxer needs (out+".mp3")
// or pin the format with -f. A leading "ffmpeg" program name is dropped, so
// a preset's full argv works as is.
type ArgvFunc func(in, out string) []string

// TimeFFmpeg runs ffmpeg once on in, with an output in a temp dir that is
// removed afterwards, and reports ffmpeg's own time: the figure to subtract
// from a pipeline latency to get the pipeline's overhead.
func TimeFFmpeg(ctx context.Context, in string, argvFor ArgvFunc) (Timing, error) {
	tmp, err := os.MkdirTemp("", "ffpipe-time-")
	if err != nil {
		return Timing{}, fmt.Errorf("time ffmpeg: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	t, err := timeOne(ctx, argvFor(in, filepath.Join(tmp, "out")))
	if err != nil {
		return Timing{}, fmt.Errorf("time ffmpeg %s: %w", in, err)
	}
	return t, nil
}

// Baseline runs ffmpeg over files with at most parallel processes at once
// (default runtime.NumCPU()): the "ls | xargs -P cores ffmpeg" baseline
// the throughput benchmark compares the pipeline with. It returns the wall
// time of the whole set; outputs go to a temp dir that is removed. The first
// failure stops the rest and is returned with ffmpeg's stderr tail.
func Baseline(ctx context.Context, files []string, argvFor ArgvFunc, parallel int) (time.Duration, error) {
	wall, _, err := BaselineDetail(ctx, files, argvFor, parallel)
	return wall, err
}

// BaselineDetail is Baseline with the Timing of every file (in files order).
func BaselineDetail(ctx context.Context, files []string, argvFor ArgvFunc, parallel int) (time.Duration, []Timing, error) {
	if parallel <= 0 {
		parallel = runtime.NumCPU()
	}
	tmp, err := os.MkdirTemp("", "ffpipe-baseline-")
	if err != nil {
		return 0, nil, fmt.Errorf("baseline: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timings := make([]Timing, len(files))
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range min(parallel, len(files)) {
		wg.Go(func() {
			for i := range jobs {
				out := filepath.Join(tmp, fmt.Sprintf("%06d", i))
				t, err := timeOne(ctx, argvFor(files[i], out))
				if err != nil {
					cancel(fmt.Errorf("ffmpeg %s: %w", files[i], err))
					continue
				}
				timings[i] = t
				// Outputs are not kept: free the disk as we go.
				matches, _ := filepath.Glob(out + "*")
				for _, m := range matches {
					_ = os.Remove(m)
				}
			}
		})
	}
feed:
	for i := range files {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	wall := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return 0, nil, fmt.Errorf("baseline: %w", err)
	}
	return wall, timings, nil
}

// timeOne runs ffmpeg with argv (program name optional) and times it.
func timeOne(ctx context.Context, argv []string) (Timing, error) {
	if len(argv) > 0 && strings.TrimSuffix(filepath.Base(argv[0]), ".exe") == ffmpegBin {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		return Timing{}, fmt.Errorf("run ffmpeg: %w: empty argv", ErrBadSpec)
	}
	cmd := command(ctx, ffmpegBin, argv...)
	tail := &tailWriter{max: stderrTail}
	cmd.Stderr = tail
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			return Timing{}, fmt.Errorf("run ffmpeg: %w", context.Cause(ctx))
		}
		return Timing{}, fmt.Errorf("run ffmpeg: %w: %s", err, tail.String())
	}
	return Timing{Wall: wall, User: cmd.ProcessState.UserTime(), System: cmd.ProcessState.SystemTime()}, nil
}
