package batch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/ffpipe/ffpipe/internal/presets"
)

// Progress is how far a running task's ffmpeg is, read from the node
// through Batch's task-file API (no credential on the node: the files stay
// there and the caller's Batch access reads them).
type Progress struct {
	// DurationSeconds is the source's duration as probed first (0:
	// unknown); DoneSeconds how much of it ffmpeg has written.
	DurationSeconds float64 `json:"durationSeconds,omitempty"`
	DoneSeconds     float64 `json:"doneSeconds"`
	// Percent done (0–100); ETA the estimated time left from the rate so
	// far (0 when unknown).
	Percent float64       `json:"percent"`
	ETA     time.Duration `json:"etaNanos,omitempty"`
	// Ended: ffmpeg wrote its last block (the task is verifying outputs).
	Ended bool `json:"ended,omitempty"`
}

// progressTail is how much of the progress file is read: its last blocks.
const progressTail = 4096

// Progress reads a running task's progress; started is when the task
// started (for the ETA). A task whose ffmpeg has not started yet has no
// progress file: ErrTaskFileNotFound.
func (c *Client) Progress(ctx context.Context, jobID, key string, started time.Time) (Progress, error) {
	wd := func(name string) string { return "wd/" + name }
	prog, err := c.taskFileTail(ctx, jobID, key, wd(presets.ProgressFile), progressTail)
	if err != nil {
		return Progress{}, err
	}
	var dur float64
	if b, err := c.taskFileTail(ctx, jobID, key, wd(presets.DurationFile), 64); err == nil {
		dur, _ = strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	}
	return ParseProgress(prog, dur, started, time.Now()), nil
}

// ErrTaskFileNotFound: the task has no such file (yet).
var ErrTaskFileNotFound = errors.New("task file not found")

// taskFileTail reads the last n bytes of a task file (all of it when the
// service ignores the range).
func (c *Client) taskFileTail(ctx context.Context, jobID, key, name string, n int64) ([]byte, error) {
	props, err := c.c.GetTaskFileProperties(ctx, jobID, key, name, nil)
	if err != nil {
		// A HEAD answer has no body, so no error code: its 404 says it.
		var re *azcore.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("task %s file %s: %w", key, name, ErrTaskFileNotFound)
		}
		return nil, fmt.Errorf("task %s file %s: %w", key, name, err)
	}
	var opts *azbatch.GetTaskFileOptions
	if size := deref(props.ContentLength); size > n {
		opts = &azbatch.GetTaskFileOptions{OCPRange: to.Ptr(fmt.Sprintf("bytes=%d-%d", size-n, size-1))}
	}
	resp, err := c.c.GetTaskFile(ctx, jobID, key, name, opts)
	if err != nil {
		if code, _ := errorCode(err); strings.EqualFold(code, "FileNotFound") {
			return nil, fmt.Errorf("task %s file %s: %w", key, name, ErrTaskFileNotFound)
		}
		return nil, fmt.Errorf("task %s file %s: %w", key, name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("task %s file %s: %w", key, name, err)
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return b, nil
}

// ParseProgress reads ffmpeg's -progress output (key=value lines, a block
// ending in progress=continue or progress=end; possibly cut at the start)
// against the source duration, at now for a task started at started.
func ParseProgress(b []byte, durationSeconds float64, started, now time.Time) Progress {
	p := Progress{DurationSeconds: max(durationSeconds, 0)}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		switch k {
		case "out_time_us", "out_time_ms": // both are microseconds in ffmpeg
			if us, err := strconv.ParseInt(v, 10, 64); err == nil && us >= 0 {
				p.DoneSeconds = float64(us) / 1e6
			}
		case "progress":
			p.Ended = v == "end"
		}
	}
	switch {
	case p.Ended:
		p.Percent = 100
	case p.DurationSeconds > 0:
		p.Percent = min(100, 100*p.DoneSeconds/p.DurationSeconds)
	}
	if elapsed := now.Sub(started); !started.IsZero() && elapsed > 0 && p.Percent > 0 && p.Percent < 100 {
		p.ETA = time.Duration(float64(elapsed) * (100 - p.Percent) / p.Percent).Round(time.Second)
	}
	return p
}

// RunningTask is a running task of the job.
type RunningTask struct {
	Key string
	TaskInfo
}

// Running lists up to max running tasks of jobID (max ≤ 0: 1,000).
func (c *Client) Running(ctx context.Context, jobID string, max int) ([]RunningTask, error) {
	if max <= 0 {
		max = 1000
	}
	pager := c.c.NewListTasksPager(jobID, &azbatch.ListTasksOptions{
		Filter:      to.Ptr("state eq 'running'"),
		SelectParam: []string{"id", "state", "creationTime", "environmentSettings", "executionInfo"},
		MaxResults:  to.Ptr(int32(min(max, 1000))),
	})
	var out []RunningTask
	for pager.More() && len(out) < max {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if code, _ := errorCode(err); strings.EqualFold(code, "JobNotFound") {
				return nil, fmt.Errorf("list running tasks: %w", ErrJobNotFound)
			}
			return nil, fmt.Errorf("list running tasks: %w", err)
		}
		for _, t := range page.Value {
			if !strings.EqualFold(string(deref(t.State)), string(azbatch.TaskStateRunning)) {
				continue
			}
			rt := RunningTask{Key: deref(t.ID), TaskInfo: TaskInfo{State: "running", Created: deref(t.CreationTime)}}
			if ei := t.ExecutionInfo; ei != nil {
				rt.Started = deref(ei.StartTime)
			}
			if st := ffpipeSettings(t.EnvironmentSettings); st.found {
				rt.Request, _ = DecodeRequestEnv(st.request)
			}
			out = append(out, rt)
		}
	}
	return out, nil
}
