package servicebus_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sbtest"
)

// BenchmarkSendReceiveComplete sends batches of 100 through the SDK over
// loopback, receives them in PeekLock and completes each (concurrently);
// it reports
// messages per second and the p99 latency from send to completion of a
// batch.
func BenchmarkSendReceiveComplete(b *testing.B) {
	for _, bc := range []struct {
		name    string
		durable bool
	}{{"memory", false}, {"durable", true}} {
		b.Run(bc.name, func(b *testing.B) {
			var opts []sbtest.Option
			if bc.durable {
				opts = append(opts, sbtest.WithDataDir(b.TempDir()))
			}
			s := sbtest.Start(b, opts...)
			ctx := context.Background()
			c, err := azservicebus.NewClientFromConnectionString(s.ConnectionString(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close(ctx)
			snd, err := c.NewSender(queue, nil)
			if err != nil {
				b.Fatal(err)
			}
			r, err := c.NewReceiverForQueue(queue, nil)
			if err != nil {
				b.Fatal(err)
			}
			const batchSize = 100
			body := make([]byte, 256)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				batch, err := snd.NewMessageBatch(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				for j := 0; j < batchSize; j++ {
					if err := batch.AddMessage(&azservicebus.Message{Body: body}, nil); err != nil {
						b.Fatal(err)
					}
				}
				if err := snd.SendMessageBatch(ctx, batch, nil); err != nil {
					b.Fatal(err)
				}
				for got := 0; got < batchSize; {
					msgs, err := r.ReceiveMessages(ctx, batchSize-got, nil)
					if err != nil {
						b.Fatal(err)
					}
					// Settle the batch concurrently, as a Functions host does.
					errs := make(chan error, len(msgs))
					for _, m := range msgs {
						go func() { errs <- r.CompleteMessage(ctx, m, nil) }()
					}
					for range msgs {
						if err := <-errs; err != nil {
							b.Fatal(err)
						}
					}
					got += len(msgs)
				}
				lat = append(lat, time.Since(t0))
			}
			elapsed := time.Since(start)
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(b.N*batchSize)/elapsed.Seconds(), "msg/s")
			b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-batch-ms")
		})
	}
}
