package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/etags"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/tooling/stack"
)

// dispatch measures queue → host → Dispatch → Batch: N request messages
// wait in the queue while the host is stopped; the clock starts when the
// host starts and stops when the job holds N tasks. The pool has no nodes,
// so every task stays active and nothing else competes for the CPU.
func (r *runner) dispatch(ctx context.Context) error {
	n := r.o.DispatchMessages
	// Sweep every 10 s (the local default of the app settings; once a
	// minute in Azure) rather than the stack's 1 s: its reconciler lists up
	// to 5,000 inputs a run, and 20,000 fresh inputs without tasks are
	// exactly what it looks for once they are older than
	// FFPIPE_RECONCILE_AFTER, so that is raised above the run's length.
	p, err := r.startStack(ctx, "dispatch", stack.Options{
		SweepSchedule: "*/10 * * * * *",
		Settings:      map[string]string{"FFPIPE_RECONCILE_AFTER": "30m"},
	})
	if err != nil {
		return err
	}
	defer p.s.Close()
	// No Event Grid: the inputs below must not also arrive as events.
	if err := p.s.Stop(stack.EventGrid, false); err != nil {
		return err
	}
	bc, err := p.s.BatchClient()
	if err != nil {
		return err
	}
	if err := zeroNodes(ctx, bc.SDK(), p.cfg.BatchPool); err != nil {
		return err
	}

	r.progress("dispatch: creating %d input blobs …", n)
	t0 := time.Now()
	bodies, keys, err := dispatchInputs(ctx, p, n)
	if err != nil {
		return err
	}
	r.progress("dispatch: blobs in %.1fs; stopping the host and sending %d messages …", time.Since(t0).Seconds(), n)

	if err := p.s.Stop(stack.Host, false); err != nil {
		return err
	}
	t0 = time.Now()
	if err := sendAll(ctx, p.s.ServiceBusConnectionString(), p.cfg.Queue, bodies, keys, 8); err != nil {
		return err
	}
	r.progress("dispatch: sent in %.1fs; starting the host, counting tasks …", time.Since(t0).Seconds())

	profile := ""
	if r.o.CPUProfile != "" {
		profile = r.o.CPUProfile + ".dispatch"
	}
	stopProfile, err := startCPUProfile(profile)
	if err != nil {
		return err
	}
	defer stopProfile()
	cpu0 := stackCPUBreakdown()
	start := time.Now()
	if err := p.s.Restart(ctx, stack.Host); err != nil {
		return err
	}
	curve, err := r.countTasks(ctx, bc, p.cfg.BatchJob, n, start)
	if err != nil {
		return err
	}
	stopProfile()
	d := time.Duration(curve[len(curve)-1].T * float64(time.Second))
	r.res.DispatchTasks = lastTasks(curve)
	r.res.DispatchCPUSecondsPer1000 = cpuPer1000(cpu0, stackCPUBreakdown(), r.res.DispatchTasks)
	r.res.DispatchSeconds = round(d.Seconds(), 3)
	r.res.DispatchTasksPerS = round(Rate(r.res.DispatchTasks, d), 1)
	r.res.DispatchPeakPerS = round(PeakRate(curve, 1), 1)
	r.res.DispatchCurve = curve
	r.res.HandlerRSSDispatchMB = handlerHWM(p.s)
	r.progress("dispatch: %d tasks in %.2fs = %.0f tasks/s (peak %.0f/s); CPU s per 1,000 tasks %v; handler peak RSS %.1f MB",
		r.res.DispatchTasks, d.Seconds(), r.res.DispatchTasksPerS, r.res.DispatchPeakPerS, r.res.DispatchCPUSecondsPer1000, r.res.HandlerRSSDispatchMB)
	return nil
}

// dispatchInputs creates n small input blobs (never downloaded: the pool
// has no nodes) and the request each would get from OnBlobCreated.
func dispatchInputs(ctx context.Context, p *pipe, n int) (bodies [][]byte, keys []string, err error) {
	bodies, keys = make([][]byte, n), make([]string, n)
	err = parallelN(ctx, n, 32, func(i int) error {
		blob := fmt.Sprintf("dispatch/%06d.mp4", i)
		bb := p.blob.ServiceClient().NewContainerClient(p.cfg.InputContainer).NewBlockBlobClient(blob)
		content := []byte("bench: never downloaded (zero-node pool)")
		resp, err := bb.UploadBuffer(ctx, content, &blockblob.UploadBufferOptions{})
		if err != nil {
			return fmt.Errorf("create %s: %w", blob, err)
		}
		etag := string(*resp.ETag)
		keys[i] = request.Key(p.cfg.StorageAccount(), p.cfg.InputContainer, blob, etag)
		bodies[i], err = json.Marshal(map[string]any{
			"v": 1,
			// What OnBlobCreated sends: name, eTag and size from the event.
			"source": map[string]any{"container": p.cfg.InputContainer, "blob": blob, "etag": etags.Normalize(etag), "size": len(content)},
		})
		return err
	})
	return bodies, keys, err
}

// countTasks polls the job's task counts from start until it holds n
// tasks (or a deadline that grows with n, noted in the result) and returns
// the curve of tasks over time.
func (r *runner) countTasks(ctx context.Context, bc *batch.Client, jobID string, n int, start time.Time) ([]Sample, error) {
	var curve []Sample
	deadline := time.Now().Add(time.Duration(n)*30*time.Millisecond + 2*time.Minute)
	lastPrint := time.Now()
	for {
		tc, err := bc.TaskCounts(ctx, jobID)
		now := time.Since(start)
		if err == nil {
			total := tc.Active + tc.Running + tc.Completed
			curve = append(curve, Sample{T: round(now.Seconds(), 3), Tasks: total})
			if total >= n {
				return curve, nil
			}
			if time.Since(lastPrint) > 2*time.Second {
				r.progress("dispatch: %d/%d tasks after %.1fs", total, n, now.Seconds())
				lastPrint = time.Now()
			}
		}
		if time.Now().After(deadline) && len(curve) > 0 {
			// Report the rate so far rather than nothing.
			r.res.Notes = append(r.res.Notes, fmt.Sprintf("dispatch stopped at its deadline: %d of %d tasks after %s; the rate is over those",
				lastTasks(curve), n, now.Round(time.Second)))
			return curve, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cpuPer1000 is the CPU seconds each part spent between two
// stackCPUBreakdown samples per 1,000 of n units of work (nil when n is 0).
// A part that started after cpu0 (a restarted handler) counts from zero.
func cpuPer1000(cpu0, cpu1 map[string]time.Duration, n int) map[string]float64 {
	if n <= 0 {
		return nil
	}
	out := map[string]float64{}
	for k, v := range cpu1 {
		if d := v - cpu0[k]; d > 0 {
			out[k] = round(d.Seconds()*1000/float64(n), 3)
		}
	}
	return out
}

func lastTasks(c []Sample) int {
	if len(c) == 0 {
		return 0
	}
	return c[len(c)-1].Tasks
}

// zeroNodes turns the pool's autoscale off and resizes it to nothing, then
// waits until its nodes are gone.
func zeroNodes(ctx context.Context, c *azbatch.Client, pool string) error {
	if _, err := c.DisablePoolAutoScale(ctx, pool, nil); err != nil {
		return fmt.Errorf("disable autoscale of %s: %w", pool, err)
	}
	if _, err := c.ResizePool(ctx, pool, azbatch.ResizePoolContent{
		TargetDedicatedNodes: to.Ptr[int32](0), TargetLowPriorityNodes: to.Ptr[int32](0),
	}, nil); err != nil {
		return fmt.Errorf("resize %s to zero: %w", pool, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		pager := c.NewListNodesPager(pool, nil)
		nodes := 0
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("list nodes of %s: %w", pool, err)
			}
			nodes += len(page.Value)
		}
		if nodes == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pool %s still has %d nodes", pool, nodes)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sendAll sends bodies (MessageId = keys[i]) in batches of 100 with
// parallel senders.
func sendAll(ctx context.Context, conn, queue string, bodies [][]byte, keys []string, parallel int) error {
	c, err := azservicebus.NewClientFromConnectionString(conn, nil)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	const batch = 100
	chunks := (len(bodies) + batch - 1) / batch
	senders := make([]*azservicebus.Sender, parallel)
	for i := range senders {
		if senders[i], err = c.NewSender(queue, nil); err != nil {
			return err
		}
		defer senders[i].Close(context.WithoutCancel(ctx))
	}
	var next atomic.Int64
	errs := make([]error, parallel)
	var wg sync.WaitGroup
	for w := range parallel {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k >= chunks || ctx.Err() != nil {
					return
				}
				mb, err := senders[w].NewMessageBatch(ctx, nil)
				if err != nil {
					errs[w] = err
					return
				}
				for i := k * batch; i < min((k+1)*batch, len(bodies)); i++ {
					m := &azservicebus.Message{Body: bodies[i], ContentType: to.Ptr("application/json")}
					if keys != nil {
						m.MessageID = to.Ptr(keys[i])
					}
					if err := mb.AddMessage(m, nil); err != nil {
						errs[w] = err
						return
					}
				}
				if err := senders[w].SendMessageBatch(ctx, mb, nil); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// parallelN runs f(0..n-1) with at most par at once; the first error wins.
func parallelN(ctx context.Context, n, par int, f func(i int) error) error {
	var next atomic.Int64
	errs := make([]error, par)
	var wg sync.WaitGroup
	for w := range par {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ctx.Err()
}

// handlerHWM is the handler process's peak resident set (VmHWM) in MB, or
// 0 when it cannot be read.
func handlerHWM(s *stack.Stack) float64 {
	pid := s.HandlerPid()
	if pid <= 0 {
		return 0
	}
	kb, err := procStatusKB(pid, "VmHWM")
	if err != nil {
		return 0
	}
	return round(float64(kb)/1024, 1)
}

// procStatusKB reads one "<field>: N kB" line of /proc/<pid>/status.
func procStatusKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", field, pid)
}
