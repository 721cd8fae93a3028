package batch_test

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/ffpipe/ffpipe/internal/emulator/batch"
)

// BenchmarkAddTaskCollection measures addtaskcollection throughput through
// azbatch into a zero-node pool (target: 5,000 tasks/s), 16 requests in
// flight, each of 100 tasks, with the state log on disk and in memory.
func BenchmarkAddTaskCollection(b *testing.B) {
	for _, mode := range []string{"disk", "memory"} {
		b.Run(mode, func(b *testing.B) {
			opts := batch.Options{}
			if mode == "disk" {
				opts.DataDir = b.TempDir()
			}
			_, c := start(b, opts)
			createPool(b, c, "p", 0, 1, nil)
			createJob(b, c, "j", "p", nil)
			var next atomic.Int64
			var failed atomic.Int64
			const workers = 16
			b.ResetTimer()
			t0 := time.Now()
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						n := next.Add(1) - 1
						if n >= int64(b.N) {
							return
						}
						g := azbatch.TaskGroup{Value: make([]azbatch.CreateTaskContent, 100)}
						for i := range g.Value {
							g.Value[i] = azbatch.CreateTaskContent{ID: to.Ptr(fmt.Sprintf("t%d-%d", n, i)),
								CommandLine:         to.Ptr("/bin/sh -c \"ffmpeg -nostdin -i input.mp4 output.mp3\""),
								EnvironmentSettings: []azbatch.EnvironmentSetting{{Name: to.Ptr("FFPIPE_KEY"), Value: to.Ptr(strings.Repeat("k", 32))}},
								Constraints:         &azbatch.TaskConstraints{MaxWallClockTime: to.Ptr("PT30M"), MaxTaskRetryCount: to.Ptr[int32](2)}}
						}
						res, err := c.CreateTaskCollection(ctxT(b), "j", g, nil)
						if err != nil {
							failed.Add(100)
							continue
						}
						for _, r := range res.Value {
							if !strings.EqualFold(string(*r.Status), "success") {
								failed.Add(1)
							}
						}
					}
				}()
			}
			wg.Wait()
			el := time.Since(t0)
			b.StopTimer()
			if f := failed.Load(); f > 0 {
				b.Fatalf("got %d failed adds, want 0", f)
			}
			b.ReportMetric(float64(b.N*100)/el.Seconds(), "tasks/s")
		})
	}
}

// BenchmarkAddToRunning measures the time from CreateTask to the task being
// seen running (or already completed) with a free slot (target p50 ≤ 50 ms).
func BenchmarkAddToRunning(b *testing.B) {
	_, c := start(b, batch.Options{MaxSlots: 4, DataDir: b.TempDir()})
	createPool(b, c, "p", 1, 4, nil)
	createJob(b, c, "j", "p", nil)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("t%d", i)
		t0 := time.Now()
		addTask(b, c, "j", azbatch.CreateTaskContent{ID: to.Ptr(id), CommandLine: to.Ptr("true")})
		for {
			tk, err := c.GetTask(ctxT(b), "j", id, &azbatch.GetTaskOptions{SelectParam: []string{"state"}})
			if err != nil {
				b.Fatal(err)
			}
			if *tk.State != azbatch.TaskStateActive {
				break
			}
		}
		lat = append(lat, time.Since(t0))
		// Keep the slot free: wait for completion outside the measurement.
		b.StopTimer()
		for {
			tk, err := c.GetTask(ctxT(b), "j", id, &azbatch.GetTaskOptions{SelectParam: []string{"state"}})
			if err != nil {
				b.Fatal(err)
			}
			if *tk.State == azbatch.TaskStateCompleted {
				break
			}
		}
		b.StartTimer()
	}
	b.StopTimer()
	sort.Slice(lat, func(a, z int) bool { return lat[a] < lat[z] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "p90_ms")
}
