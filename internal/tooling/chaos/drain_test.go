package chaos

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// looks is a scripted pipeline: the snapshot of each look, by the minute
// of fake time it is taken at.
type looks func(at time.Duration) (snapshot, error)

func (l looks) look(start time.Time) func(context.Context) (snapshot, error) {
	return func(context.Context) (snapshot, error) { return l(time.Since(start)) }
}

// busy is a snapshot with one task left; sig changes its signature.
func busy(sig string) snapshot {
	return snapshot{tasks: []string{"k1"}, signature: sig, why: "1 Batch task"}
}

var resolvedLook = snapshot{signature: "done"}

// TestSettle: the drain ends resolved, quiescent (nothing moved for the
// quiet period) or at the cap (still moving); a failed look is movement.
// Fake time (testing/synctest): no test waits for real.
func TestSettle(t *testing.T) {
	const quiet, limit = 4 * time.Minute, 20 * time.Minute
	tests := []struct {
		name    string
		looks   looks
		want    string
		wantErr bool
	}{
		{"resolved at once", func(time.Duration) (snapshot, error) { return resolvedLook, nil }, DrainResolved, false},
		{"slow but moving, then resolved", func(at time.Duration) (snapshot, error) {
			if at < 15*time.Minute {
				return busy(fmt.Sprint(at / time.Minute)), nil // moves every minute
			}
			return resolvedLook, nil
		}, DrainResolved, false},
		{"stuck: nothing moves", func(time.Duration) (snapshot, error) { return busy("same"), nil }, DrainQuiescent, true},
		{"moving until the cap", func(at time.Duration) (snapshot, error) { return busy(fmt.Sprint(at / time.Minute)), nil }, DrainCap, true},
		{"looks fail: movement, never a stall", func(time.Duration) (snapshot, error) { return snapshot{}, errors.New("peek: connection refused") }, DrainCap, true},
		{"stuck after moving", func(at time.Duration) (snapshot, error) {
			if at < 3*time.Minute {
				return busy(fmt.Sprint(at / time.Minute)), nil
			}
			return busy("stuck"), nil
		}, DrainQuiescent, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				end, _, err := settle(t.Context(), tt.looks.look(start), quiet, start.Add(limit))
				if end != tt.want || (err != nil) != tt.wantErr {
					t.Fatalf("got %s, %v; want %s (error %v)", end, err, tt.want, tt.wantErr)
				}
				if took := time.Since(start); took > limit+drainPoll {
					t.Errorf("took %v of fake time, want at most the cap %v", took, limit)
				}
			})
		})
	}
}
