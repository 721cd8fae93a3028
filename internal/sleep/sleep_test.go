package sleep

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if !For(t.Context(), time.Minute) {
			t.Errorf("For(1m) = false, want true")
		}
		if got := time.Since(start); got != time.Minute {
			t.Errorf("waited %v, want 1m", got)
		}

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start = time.Now()
		if For(ctx, time.Hour) {
			t.Errorf("For(1h) with a context ending after 1s = true, want false")
		}
		if got := time.Since(start); got != time.Second {
			t.Errorf("waited %v, want 1s", got)
		}
		if For(ctx, 0) {
			t.Errorf("For(0) on a done context = true, want false")
		}
		if !For(t.Context(), -time.Second) {
			t.Errorf("For(-1s) = false, want true")
		}
	})
}
