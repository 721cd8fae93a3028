// Package sleep waits for a duration or until a context ends, whichever
// comes first: the one way retry loops and back-offs wait.
//
// It imports nothing of ffpipe, so the stand-ins may use it
// (docs/architecture.md).
package sleep

import (
	"context"
	"time"
)

// For waits d, or until ctx is done. It reports whether the full wait
// elapsed (false: ctx ended first). A d of zero or less returns at once,
// true unless ctx is already done.
func For(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
