package batch

import (
	"errors"
	"fmt"
)

// Sentinels for the whole-request outcomes callers branch on.
var (
	// ErrPoolNotFound: the configured pool does not exist (run `ffpipe pool ensure` or deploy infra/).
	ErrPoolNotFound = errors.New("batch pool not found")
	// ErrJobNotFound: the job does not exist; call EnsureJob and retry.
	ErrJobNotFound = errors.New("batch job not found")
	// ErrTaskNotFound: the job has no task with that id.
	ErrTaskNotFound = errors.New("batch task not found")
	// ErrJobNotActive: the job is terminating, terminated or being deleted, so it accepts no tasks.
	ErrJobNotActive = errors.New("batch job not active")
	// ErrNodeIdentityNeedsARM: a pool's user-assigned identity can only be
	// set through Azure Resource Manager (infra/), not the Batch data plane.
	ErrNodeIdentityNeedsARM = errors.New("pool node identity must be set through Azure Resource Manager")
	// ErrInvalidSpec: a TaskSpec or PoolConfig is incomplete or inconsistent.
	ErrInvalidSpec = errors.New("invalid batch spec")
)

// TaskError is a per-task rejection by the Batch service (a ClientError
// item of addtaskcollection, or a 4xx for a single task).
type TaskError struct {
	Code    string // Batch error code, e.g. "InvalidPropertyValue"
	Message string // first line of the service message
}

func (e *TaskError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("batch rejected task: %s", e.Code)
	}
	return fmt.Sprintf("batch rejected task: %s: %s", e.Code, e.Message)
}
