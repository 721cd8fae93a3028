package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// The Functions host never renews the locks of a batch (cardinality many):
// a Dispatch invocation that outlives the queue's lock loses it, its
// completions fail and every message of the batch comes back with a higher
// DeliveryCount (docs/localhost.md). So Dispatch works under a time budget,
// half the lock duration (FFPIPE_QUEUE_LOCK_DURATION), whatever the batch
// size or the latency of storage and Batch: when the budget is spent, the
// work still running is cancelled and the invocation fails, so the host
// abandons the batch in time and it is redelivered at once. Nothing done is
// undone or done twice: a task id is the request's key, so the redelivery's
// tasks that were added already answer TaskExists (success), and failure
// records are written once per key (docs/reliability.md, "Dispatch keeps to
// a time budget"). The keys are not remembered to skip them: Sweep's retry
// re-sends a key whose task it deleted, and that one must be added again.

// dispatchBudget is how long one Dispatch invocation may work.
func (a *app) dispatchBudget() time.Duration { return a.cfg.QueueLockDuration / 2 }

// dispatch runs dispatchBatch under the budget.
func (a *app) dispatch(r *http.Request, inv *invocation) error {
	budget := a.dispatchBudget()
	ctx, cancel := context.WithTimeout(r.Context(), budget)
	defer cancel()
	err := a.dispatchBatch(r.WithContext(ctx), inv)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil {
		inv.logf("dispatch: budget of %s spent; the batch is abandoned and redelivered, what was done is kept", budget)
		return retry(fmt.Errorf("dispatch budget of %s (half the queue lock duration %s) spent before the batch was done: %w",
			budget, a.cfg.QueueLockDuration, err))
	}
	return err
}
