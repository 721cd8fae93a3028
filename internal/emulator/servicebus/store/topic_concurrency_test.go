package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestTopicConcurrentFanOut: senders publish to a topic while receivers
// complete on both subscriptions, a third caller cancels scheduled
// messages and the durable store compacts; every message reaches each
// subscription exactly once, also after a reopen.
func TestTopicConcurrentFanOut(t *testing.T) {
	const senders, perSender = 4, 200
	dir := t.TempDir()
	tc := TopicConfig{Name: "t", Subscriptions: []SubscriptionConfig{DefaultSubscriptionConfig("a"), DefaultSubscriptionConfig("b")}}
	opts := Options{Dir: dir, CompactMinBytes: 8 << 10, Config: &Config{Topics: []TopicConfig{tc}}}
	s, err := Open(opts)
	ok(t, err)
	defer func() { s.Close() }()
	top, err := s.Topic("t")
	ok(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	for i := 0; i < senders; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for n := 0; n < perSender; n += 4 {
				batch := make([]Incoming, 4)
				for j := range batch {
					batch[j] = Incoming{Body: []byte(fmt.Sprintf("s%d-%d", i, n+j))}
				}
				// A scheduled message cancelled at once: never delivered.
				res, err := top.Send(ctx, append(batch, Incoming{Body: []byte("never"), ScheduledAt: time.Now().Add(time.Hour)}))
				if err != nil {
					t.Errorf("send: %v", err)
					return
				}
				if err := top.CancelScheduled(ctx, []int64{res[4].SequenceNumber}); err != nil {
					t.Errorf("cancel: %v", err)
					return
				}
			}
		}(i)
	}
	total := senders * perSender
	got := map[string]map[string]int{"a": {}, "b": {}}
	var mu sync.Mutex
	for _, name := range []string{"a", "b"} {
		q := mustQueue(t, s, "t/Subscriptions/"+name)
		wg.Add(1)
		go func(name string, q *Queue) {
			defer wg.Done()
			for n := 0; n < total; {
				msgs, err := q.ReceiveWait(ctx, 16, PeekLock)
				if err != nil {
					t.Errorf("receive on %s after %d: %v", name, n, err)
					return
				}
				for _, m := range msgs {
					if err := q.Complete(ctx, m.LockToken); err != nil {
						t.Errorf("complete: %v", err)
					}
					mu.Lock()
					got[name][string(m.Body)]++
					mu.Unlock()
				}
				n += len(msgs)
			}
		}(name, q)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 5; i++ {
			if err := s.Compact(ctx); err != nil {
				t.Errorf("compact: %v", err)
			}
		}
	}()
	wg.Wait()
	for name, m := range got {
		if len(m) != total {
			t.Errorf("subscription %s: %d distinct messages, want %d", name, len(m), total)
		}
		for body, n := range m {
			if n != 1 || body == "never" {
				t.Errorf("subscription %s: %q delivered %d times", name, body, n)
			}
		}
	}
	ok(t, s.Sync(ctx))
	ok(t, s.Close())
	if s, err = Open(opts); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if c := mustQueue(t, s, "t/Subscriptions/"+name).Counts(); c != (Counts{}) {
			t.Errorf("after reopen, subscription %s holds %+v, want nothing", name, c)
		}
	}
}
