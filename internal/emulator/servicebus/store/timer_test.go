package store

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// These tests run on synctest's fake clock: Options.Now is nil, so the
// store uses time.Now and real timers, which the bubble controls.

func TestTimerWakesWaiters(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, q *Queue) // puts a message on its way
		wait  func(q *Queue) *Queue        // the entity to wait on
		after time.Duration                // when it should arrive
		check func(t *testing.T, m Message)
	}{
		{
			name: "lock expiry",
			setup: func(t *testing.T, q *Queue) {
				_, err := q.Send(bg, []Incoming{{Body: []byte("m")}})
				ok(t, err)
				if msgs, _ := q.Receive(1, PeekLock); len(msgs) != 1 {
					t.Fatal("no message to lock")
				}
			},
			wait:  func(q *Queue) *Queue { return q },
			after: 30 * time.Second,
			check: func(t *testing.T, m Message) {
				if m.DeliveryCount != 1 {
					t.Errorf("delivery count %d, want 1", m.DeliveryCount)
				}
			},
		},
		{
			name: "scheduled activation",
			setup: func(t *testing.T, q *Queue) {
				_, err := q.Send(bg, []Incoming{{Body: []byte("m"), ScheduledAt: time.Now().Add(time.Hour)}})
				ok(t, err)
			},
			wait:  func(q *Queue) *Queue { return q },
			after: time.Hour,
			check: func(t *testing.T, m Message) {
				if m.State != StateActive {
					t.Errorf("state %v, want active", m.State)
				}
			},
		},
		{
			name: "TTL expiry to dead-letter queue",
			setup: func(t *testing.T, q *Queue) {
				_, err := q.Send(bg, []Incoming{{Body: []byte("m"), TTL: 10 * time.Minute}})
				ok(t, err)
			},
			wait:  func(q *Queue) *Queue { return q.DeadLetterQueue() },
			after: 10 * time.Minute,
			check: func(t *testing.T, m Message) {
				if m.DeadLetterReason != ReasonTTLExpired {
					t.Errorf("reason %q, want %s", m.DeadLetterReason, ReasonTTLExpired)
				}
			},
		},
		{
			name: "max delivery count by lock expiry",
			setup: func(t *testing.T, q *Queue) {
				_, err := q.Send(bg, []Incoming{{Body: []byte("m")}})
				ok(t, err)
				if msgs, _ := q.Receive(1, PeekLock); len(msgs) != 1 {
					t.Fatal("no message to lock")
				}
				// Delivery 2 and 3 are taken by a greedy receiver that never settles.
				go func() {
					for i := 0; i < 2; i++ {
						if _, err := q.ReceiveWait(bg, 1, PeekLock); err != nil {
							return
						}
					}
				}()
			},
			wait:  func(q *Queue) *Queue { return q.DeadLetterQueue() },
			after: 90 * time.Second,
			check: func(t *testing.T, m Message) {
				if m.DeadLetterReason != ReasonMaxDeliveryCountExceeded || m.DeliveryCount != 3 {
					t.Errorf("reason %q count %d", m.DeadLetterReason, m.DeliveryCount)
				}
			},
		},
	}
	for _, tt := range tests {
		for _, durable := range []bool{false, true} {
			name := tt.name
			if durable {
				name += "/durable"
			}
			t.Run(name, func(t *testing.T) {
				dir := ""
				if durable {
					dir = t.TempDir()
				}
				synctest.Test(t, func(t *testing.T) {
					qc := testQueueConfig("q")
					qc.DeadLetteringOnMessageExpiration = true
					s, err := Open(Options{Dir: dir, Config: &Config{Queues: []QueueConfig{qc}}})
					ok(t, err)
					defer s.Close()
					q := mustQueue(t, s, "q")
					start := time.Now()
					tt.setup(t, q)
					got := make(chan Message, 1)
					ctx, cancel := context.WithCancel(bg)
					defer cancel()
					go func() {
						msgs, err := tt.wait(q).ReceiveWait(ctx, 1, PeekLock)
						if err == nil {
							got <- msgs[0]
						}
					}()
					synctest.Wait()
					select {
					case m := <-got:
						t.Fatalf("received %q before its time", m.Body)
					default:
					}
					m := <-got
					if elapsed := time.Since(start); elapsed != tt.after {
						t.Errorf("arrived after %v, want %v", elapsed, tt.after)
					}
					tt.check(t, m)
				})
			})
		}
	}
}

func TestTimerStopsOnClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := Open(Options{})
		ok(t, err)
		q := mustQueue(t, s, DefaultQueueName)
		_, err = q.Send(bg, []Incoming{{Body: []byte("m"), ScheduledAt: time.Now().Add(time.Hour)}})
		ok(t, err)
		ok(t, s.Close())
		time.Sleep(2 * time.Hour) // the timer fires on a closed store: nothing happens
		if _, err := q.Receive(1, PeekLock); err == nil {
			t.Fatal("Receive after Close succeeded")
		}
	})
}
