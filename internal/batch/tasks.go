package batch

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/ffpipe/ffpipe/internal/presets"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/secret"
)

// Reading, counting and deleting the job's tasks: what Sweep, Status and
// Dispatch's TaskExists ask Batch.

// CompletedTask is a finished task as Sweep needs it.
type CompletedTask struct {
	Key string
	// Request is decoded from the task's EnvRequest; RequestErr is set
	// when that is missing or invalid (Request is then zero).
	Request    request.Request
	RequestErr error
	// Outputs are the task's output names (EnvOutputs); nil for a task made
	// before profiles (its one output is Request.Output) or when unreadable.
	Outputs []request.OutputBlob
	// Success: executionInfo.result is "success" (exit 0 and the outputs uploaded).
	Success bool
	// ExitCode is nil when the command never ran (e.g. a resource file failed to download).
	ExitCode *int
	// Failure details from executionInfo.failureInfo ("" when absent).
	FailureCategory string // "usererror" or "servererror" (lowercased)
	FailureCode     string // e.g. "FailureExitCode", "BlobNotFound", "FileUploadContainerNotFound"
	FailureMessage  string
	// Created is the task's creation time: when Dispatch added it.
	Created time.Time
	// Enqueued is when the request's message was enqueued, from the
	// task's EnvEnqueued; zero when the task has none or it is unreadable.
	Enqueued     time.Time
	Start, End   time.Time
	RetryCount   int
	RequeueCount int
	// RequiredSlots is the task's requiredSlots (0 when Batch did not say:
	// one slot).
	RequiredSlots int
}

// ListCompleted returns up to max completed tasks of jobID (max ≤ 0 means
// 1,000), using $filter=state eq 'completed' and a narrow $select.
func (c *Client) ListCompleted(ctx context.Context, jobID string, max int) ([]CompletedTask, error) {
	if max <= 0 {
		max = 1000
	}
	pager := c.c.NewListTasksPager(jobID, &azbatch.ListTasksOptions{
		Filter:      to.Ptr("state eq 'completed'"),
		SelectParam: []string{"id", "state", "creationTime", "environmentSettings", "executionInfo", "requiredSlots"},
		MaxResults:  to.Ptr(int32(min(max, 1000))),
	})
	var out []CompletedTask
	for pager.More() && len(out) < max {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if code, _ := errorCode(err); strings.EqualFold(code, "JobNotFound") {
				return out, fmt.Errorf("list completed tasks of %s: %w", jobID, ErrJobNotFound)
			}
			return out, fmt.Errorf("list completed tasks of %s: %w", jobID, secret.RedactError(err))
		}
		for _, t := range page.Value {
			if !strings.EqualFold(string(deref(t.State)), string(azbatch.TaskStateCompleted)) {
				continue
			}
			out = append(out, completedTask(t))
			if len(out) == max {
				break
			}
		}
	}
	return out, nil
}

func completedTask(t azbatch.Task) CompletedTask {
	ct := CompletedTask{Key: deref(t.ID), Created: deref(t.CreationTime), RequiredSlots: int(deref(t.RequiredSlots))}
	st := ffpipeSettings(t.EnvironmentSettings)
	ct.Enqueued = st.enqueued
	if st.found {
		ct.Request, ct.RequestErr = DecodeRequestEnv(st.request)
	} else {
		ct.RequestErr = fmt.Errorf("task %s has no %s setting", ct.Key, EnvRequest)
	}
	if st.outputs != "" {
		ct.Outputs, _ = DecodeOutputsEnv(st.outputs) // unreadable: the request's one output
	}
	if ei := t.ExecutionInfo; ei != nil {
		ct.Success = strings.EqualFold(string(deref(ei.Result)), string(azbatch.TaskExecutionResultSuccess))
		if ei.ExitCode != nil {
			code := int(*ei.ExitCode)
			ct.ExitCode = &code
		}
		if fi := ei.FailureInfo; fi != nil {
			ct.FailureCategory = strings.ToLower(string(deref(fi.Category)))
			ct.FailureCode = deref(fi.Code)
			ct.FailureMessage = deref(fi.Message)
		}
		ct.Start, ct.End = deref(ei.StartTime), deref(ei.EndTime)
		ct.RetryCount, ct.RequeueCount = int(deref(ei.RetryCount)), int(deref(ei.RequeueCount))
	}
	return ct
}

// TaskExists reports whether the task key is in jobID. A missing job gives
// false and an error wrapping ErrJobNotFound.
func (c *Client) TaskExists(ctx context.Context, jobID, key string) (bool, error) {
	_, err := c.c.GetTask(ctx, jobID, key, &azbatch.GetTaskOptions{SelectParam: []string{"id"}})
	if err == nil {
		return true, nil
	}
	code, _ := errorCode(err)
	switch {
	case strings.EqualFold(code, "TaskNotFound"):
		return false, nil
	case strings.EqualFold(code, "JobNotFound"):
		return false, fmt.Errorf("get task %s: %w", key, ErrJobNotFound)
	}
	return false, fmt.Errorf("get task %s: %w", key, err)
}

// DeleteTask deletes the task key (and its files on the node). A task or
// job that is already gone is not an error.
func (c *Client) DeleteTask(ctx context.Context, jobID, key string) error {
	_, err := c.c.DeleteTask(ctx, jobID, key, nil)
	if err == nil {
		return nil
	}
	if code, _ := errorCode(err); strings.EqualFold(code, "TaskNotFound") || strings.EqualFold(code, "JobNotFound") {
		return nil
	}
	return fmt.Errorf("delete task %s: %w", key, err)
}

// TaskCounts are the job's task counts (approximate; may lag).
type TaskCounts struct {
	Active    int `json:"active"`
	Running   int `json:"running"`
	Completed int `json:"completed"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
}

// TaskInfo is what Batch says about one task: its state ("active",
// "preparing", "running" or "completed", lower case) and times.
type TaskInfo struct {
	State   string
	Created time.Time
	Started time.Time // zero until it runs
	// Request is the task's request (EnvRequest); zero when the task has
	// none or it does not decode.
	Request request.Request
	// Enqueued is the message's enqueued time (EnvEnqueued); zero when unknown.
	Enqueued time.Time
}

// Task returns the state of task key in jobID; a missing task or job
// gives an error wrapping ErrTaskNotFound or ErrJobNotFound.
func (c *Client) Task(ctx context.Context, jobID, key string) (TaskInfo, error) {
	t, err := c.c.GetTask(ctx, jobID, key, &azbatch.GetTaskOptions{SelectParam: []string{"id", "state", "creationTime", "environmentSettings", "executionInfo"}})
	if err != nil {
		code, _ := errorCode(err)
		switch {
		case strings.EqualFold(code, "TaskNotFound"):
			return TaskInfo{}, fmt.Errorf("get task %s: %w", key, ErrTaskNotFound)
		case strings.EqualFold(code, "JobNotFound"):
			return TaskInfo{}, fmt.Errorf("get task %s: %w", key, ErrJobNotFound)
		}
		return TaskInfo{}, fmt.Errorf("get task %s: %w", key, secret.RedactError(err))
	}
	ti := TaskInfo{State: strings.ToLower(string(deref(t.State))), Created: deref(t.CreationTime)}
	if ei := t.ExecutionInfo; ei != nil {
		ti.Started = deref(ei.StartTime)
	}
	st := ffpipeSettings(t.EnvironmentSettings)
	if st.found {
		ti.Request, _ = DecodeRequestEnv(st.request) // undecodable: shown without it
	}
	ti.Enqueued = st.enqueued
	return ti, nil
}

// taskSettings are the settings Dispatch puts on a task: the encoded
// request (EnvRequest; found says whether it is there), the encoded output
// names (EnvOutputs; "" when absent) and the message's enqueued time
// (EnvEnqueued; zero when absent or unreadable).
type taskSettings struct {
	request  string
	found    bool
	outputs  string
	enqueued time.Time
}

func ffpipeSettings(settings []azbatch.EnvironmentSetting) taskSettings {
	var st taskSettings
	for _, e := range settings {
		switch deref(e.Name) {
		case EnvRequest:
			st.request, st.found = deref(e.Value), true
		case EnvOutputs:
			st.outputs = deref(e.Value)
		case EnvEnqueued:
			st.enqueued = ParseEnqueuedEnv(deref(e.Value))
		}
	}
	return st
}

// TaskCounts returns the job's task counts. A missing job gives an error
// wrapping ErrJobNotFound.
func (c *Client) TaskCounts(ctx context.Context, jobID string) (TaskCounts, error) {
	resp, err := c.c.GetJobTaskCounts(ctx, jobID, nil)
	if err != nil {
		if code, _ := errorCode(err); strings.EqualFold(code, "JobNotFound") {
			return TaskCounts{}, fmt.Errorf("task counts of %s: %w", jobID, ErrJobNotFound)
		}
		return TaskCounts{}, fmt.Errorf("task counts of %s: %w", jobID, err)
	}
	tc := resp.TaskCounts
	if tc == nil {
		return TaskCounts{}, nil
	}
	return TaskCounts{
		Active:    int(deref(tc.Active)),
		Running:   int(deref(tc.Running)),
		Completed: int(deref(tc.Completed)),
		Succeeded: int(deref(tc.Succeeded)),
		Failed:    int(deref(tc.Failed)),
	}, nil
}

// ListTaskKeys returns the ids of up to max tasks of jobID in any state
// (max ≤ 0 means no limit): the reconciler's view of "work in Batch".
func (c *Client) ListTaskKeys(ctx context.Context, jobID string, max int) ([]string, error) {
	page := int32(1000)
	if max > 0 && max < 1000 {
		page = int32(max)
	}
	pager := c.c.NewListTasksPager(jobID, &azbatch.ListTasksOptions{SelectParam: []string{"id"}, MaxResults: to.Ptr(page)})
	var out []string
	for pager.More() && (max <= 0 || len(out) < max) {
		p, err := pager.NextPage(ctx)
		if err != nil {
			if code, _ := errorCode(err); strings.EqualFold(code, "JobNotFound") {
				return out, fmt.Errorf("list tasks of %s: %w", jobID, ErrJobNotFound)
			}
			return out, fmt.Errorf("list tasks of %s: %w", jobID, err)
		}
		for _, t := range p.Value {
			out = append(out, deref(t.ID))
			if max > 0 && len(out) == max {
				break
			}
		}
	}
	return out, nil
}

// LogBlobs returns the logs-container blob names of a task's stdout and stderr.
func LogBlobs(key string) (stdout, stderr string) {
	return key + "/stdout.txt", key + "/stderr.txt"
}

// ResultBlob returns the logs-container blob name of a task's result file
// (presets.ResultFile): the wrapper's verdict, uploaded whatever the outcome.
func ResultBlob(key string) string { return key + "/" + presets.ResultFile }
