package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// BenchmarkSendReceiveComplete measures the broker's core loop: one Send
// of a batch of 100 messages, then PeekLock receives and a Complete for
// each. It reports messages per second.
func BenchmarkSendReceiveComplete(b *testing.B) {
	for _, durable := range []bool{false, true} {
		name := "memory"
		if durable {
			name = "durable"
		}
		b.Run(name, func(b *testing.B) {
			opts := Options{}
			if durable {
				opts.Dir = b.TempDir()
			}
			s, err := Open(opts)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			q, _ := s.Queue(DefaultQueueName)
			body := make([]byte, 300) // about the size of an ffpipe request
			batch := make([]Incoming, 100)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range batch {
					batch[j] = Incoming{Body: body}
				}
				if _, err := q.Send(ctx, batch); err != nil {
					b.Fatal(err)
				}
				for got := 0; got < len(batch); {
					msgs, err := q.Receive(len(batch)-got, PeekLock)
					if err != nil {
						b.Fatal(err)
					}
					for _, m := range msgs {
						if err := q.Complete(ctx, m.LockToken); err != nil {
							b.Fatal(err)
						}
					}
					got += len(msgs)
				}
			}
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "msg/s")
		})
	}
}

// BenchmarkConcurrentSend measures single-message sends from many
// goroutines, as from many SDK senders: in the durable store they share
// fsyncs through group commit.
func BenchmarkConcurrentSend(b *testing.B) {
	for _, durable := range []bool{false, true} {
		for _, senders := range []int{1, 16, 64} {
			name := fmt.Sprintf("memory/senders=%d", senders)
			if durable {
				name = fmt.Sprintf("durable/senders=%d", senders)
			}
			b.Run(name, func(b *testing.B) {
				opts := Options{}
				if durable {
					opts.Dir = b.TempDir()
				}
				s, err := Open(opts)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				q, _ := s.Queue(DefaultQueueName)
				body := make([]byte, 300)
				ctx := context.Background()
				var wg sync.WaitGroup
				per := b.N/senders + 1
				b.ResetTimer()
				for g := 0; g < senders; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; i < per; i++ {
							if _, err := q.Send(ctx, []Incoming{{Body: body}}); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(per*senders)/b.Elapsed().Seconds(), "msg/s")
			})
		}
	}
}

// BenchmarkReceiveAndDelete measures batch sends with ReceiveAndDelete.
func BenchmarkReceiveAndDelete(b *testing.B) {
	for _, durable := range []bool{false, true} {
		name := "memory"
		if durable {
			name = "durable"
		}
		b.Run(name, func(b *testing.B) {
			opts := Options{}
			if durable {
				opts.Dir = b.TempDir()
			}
			s, err := Open(opts)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			q, _ := s.Queue(DefaultQueueName)
			body := make([]byte, 300)
			batch := make([]Incoming, 100)
			for j := range batch {
				batch[j] = Incoming{Body: body}
			}
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := q.Send(ctx, batch); err != nil {
					b.Fatal(err)
				}
				for got := 0; got < len(batch); {
					msgs, err := q.Receive(len(batch)-got, ReceiveAndDelete)
					if err != nil {
						b.Fatal(err)
					}
					got += len(msgs)
				}
			}
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "msg/s")
		})
	}
}
