package bench_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite/azuritetest"
	"github.com/ffpipe/ffpipe/internal/storage"
)

// BenchmarkAzurite measures the storage operations Dispatch makes per task
// (blob properties, record read, conditional record write) against Azurite,
// 16 to 256 in flight: the ceiling on the dispatch rate on this machine.
func BenchmarkAzurite(b *testing.B) {
	s := azuritetest.Start(b)
	st, err := storage.NewFromConnectionString(s.ConnectionString(), storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := st.EnsureContainer(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	const n = 256
	for i := range n {
		if err := st.Put(ctx, "bench", fmt.Sprintf("b%d", i), []byte("x"), "application/octet-stream", nil); err != nil {
			b.Fatal(err)
		}
	}
	ops := map[string]func(i int) error{
		"properties": func(i int) error { _, err := st.Properties(ctx, "bench", fmt.Sprintf("b%d", i%n)); return err },
		"get-missing": func(i int) error {
			_, err := st.Get(ctx, "bench", fmt.Sprintf("missing%d", i))
			if err != nil && !errorsIsNotFound(err) {
				return err
			}
			return nil
		},
		"put": func(i int) error {
			return st.Put(ctx, "bench", fmt.Sprintf("r%d", i), []byte(`{"state":"dispatched"}`), "application/json", map[string]string{"state": "dispatched"})
		},
	}
	for _, bc := range []struct {
		op       string
		inFlight int
	}{{"properties", 16}, {"get-missing", 16}, {"put", 16}, {"put", 64}, {"put", 256}} {
		op := ops[bc.op]
		b.Run(fmt.Sprintf("%s-%d", bc.op, bc.inFlight), func(b *testing.B) {
			var next atomic.Int64
			var wg sync.WaitGroup
			for range bc.inFlight {
				wg.Go(func() {
					for {
						i := int(next.Add(1) - 1)
						if i >= b.N {
							return
						}
						if err := op(i); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

func errorsIsNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }
