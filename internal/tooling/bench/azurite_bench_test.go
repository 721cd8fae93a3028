package bench_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// BenchmarkAzuriteListCPU measures Azurite's own CPU per listing of a
// 32-blob container: the Event Grid stand-in lists the input container every
// PollInterval, on the same cores as ffmpeg.
func BenchmarkAzuriteListCPU(b *testing.B) {
	s := azuritetest.Start(b)
	st, err := storage.NewFromConnectionString(s.ConnectionString(), storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := st.EnsureContainer(ctx, "input"); err != nil {
		b.Fatal(err)
	}
	for i := range 32 {
		if err := st.Put(ctx, "input", fmt.Sprintf("throughput/clip-%03d.mp4", i), []byte("x"), "video/mp4", nil); err != nil {
			b.Fatal(err)
		}
	}
	cpu := func() time.Duration {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.Pid()))
		if err != nil {
			b.Skip("no /proc")
		}
		f := strings.Fields(string(raw)[strings.LastIndexByte(string(raw), ')')+1:])
		u, _ := strconv.ParseInt(f[11], 10, 64)
		k, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(u+k) * 10 * time.Millisecond
	}
	b.ResetTimer()
	c0 := cpu()
	for range b.N {
		if err := st.List(ctx, "input", "", func(storage.Item) bool { return true }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpu()-c0)/float64(time.Millisecond)/float64(b.N), "azurite-cpu-ms/list")
}
