package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestConcurrentSendReceive runs senders and PeekLock receivers at once and
// checks that every message is completed exactly once, that no message is
// handed out while another receiver holds its lock, and that nothing is
// lost (also across a reopen of the durable store, with compactions).
func TestConcurrentSendReceive(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			const senders, receivers, perSender = 4, 4, 300
			total := senders * perSender
			opts := Options{}
			if durable {
				opts.Dir = t.TempDir()
				opts.CompactMinBytes = 16 << 10
			}
			s, err := Open(opts)
			ok(t, err)
			defer s.Close()
			q := mustQueue(t, s, DefaultQueueName)

			var mu sync.Mutex
			held := map[string]bool{}
			completed := map[string]int{}
			var problems []string
			done := make(chan struct{})
			// Receivers stop when everything is completed; senders have
			// their own context since a receiver may complete a message
			// before its Send has returned (while the log syncs).
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
			defer scancel()

			var wg sync.WaitGroup
			for i := 0; i < senders; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(i), 1))
					for n := 0; n < perSender; {
						k := min(1+rng.IntN(10), perSender-n)
						batch := make([]Incoming, k)
						for j := range batch {
							batch[j] = Incoming{Body: []byte(fmt.Sprintf("s%d-%d", i, n+j))}
						}
						if _, err := q.Send(sctx, batch); err != nil {
							t.Errorf("send: %v", err)
							return
						}
						n += k
					}
				}(i)
			}
			var rwg sync.WaitGroup
			for i := 0; i < receivers; i++ {
				rwg.Add(1)
				go func(i int) {
					defer rwg.Done()
					rng := rand.New(rand.NewPCG(uint64(i), 2))
					for {
						msgs, err := q.ReceiveWait(ctx, 1+rng.IntN(8), PeekLock)
						if err != nil {
							select {
							case <-done:
							default:
								t.Errorf("receive: %v", err)
							}
							return
						}
						for _, m := range msgs {
							b := string(m.Body)
							mu.Lock()
							if held[b] {
								problems = append(problems, "delivered while locked: "+b)
							}
							if completed[b] > 0 {
								problems = append(problems, "delivered after completion: "+b)
							}
							held[b] = true
							mu.Unlock()
						}
						for _, m := range msgs {
							b := string(m.Body)
							abandon := rng.IntN(10) == 0 && m.DeliveryCount == 0
							mu.Lock()
							delete(held, b) // before settling: another receiver may get it at once
							if !abandon {
								completed[b]++
							}
							n := len(completed)
							mu.Unlock()
							if abandon {
								ok2(t, q.Abandon(ctx, m.LockToken, nil))
							} else {
								ok2(t, q.Complete(ctx, m.LockToken))
							}
							if n == total {
								close(done)
								cancel()
							}
						}
					}
				}(i)
			}
			wg.Wait()
			rwg.Wait()
			mu.Lock()
			defer mu.Unlock()
			for _, p := range problems {
				t.Error(p)
			}
			if len(completed) != total {
				t.Fatalf("completed %d distinct messages, want %d", len(completed), total)
			}
			for b, n := range completed {
				if n != 1 {
					t.Errorf("%s completed %d times", b, n)
				}
			}
			if c := q.Counts(); c != (Counts{}) {
				t.Errorf("counts %+v after all completed, want empty", c)
			}
			if durable {
				ok(t, s.Sync(context.Background()))
				ok(t, s.Close())
				if s.wal.compactions == 0 {
					t.Errorf("no compaction ran while the log grew past %d bytes", opts.CompactMinBytes)
				}
				s2, err := Open(opts)
				ok(t, err)
				defer s2.Close()
				if c := mustQueue(t, s2, DefaultQueueName).Counts(); c != (Counts{}) {
					t.Errorf("after reopen: counts %+v, want empty", c)
				}
				res, err := mustQueue(t, s2, DefaultQueueName).Send(context.Background(), []Incoming{{Body: []byte("x")}})
				ok(t, err)
				if res[0].SequenceNumber != int64(total)+1 {
					t.Errorf("sequence after reopen %d, want %d", res[0].SequenceNumber, total+1)
				}
			}
		})
	}
}

// ok2 is ok for goroutines other than the test's own.
func ok2(t *testing.T, err error) {
	if err != nil {
		t.Error(err)
	}
}
