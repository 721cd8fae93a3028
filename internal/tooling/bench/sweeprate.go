package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
	"github.com/ffpipe/ffpipe/internal/etags"
	"github.com/ffpipe/ffpipe/internal/presets"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/storage"
	"github.com/ffpipe/ffpipe/internal/tooling/stack"
)

// The sweep phase measures how many completed tasks Sweep settles per
// second: N completed tasks, each with a real small output in the output
// container and its input in the input container, wait while the Functions
// host is stopped; then the host starts and the phase times until the job
// is empty. Settled means output verified, input deleted, record written,
// task deleted, and the phase checks all four afterwards. The time runs from
// Sweep's first call (its listing of completed tasks) to the empty job.
//
// The tasks are built by the production code (batch.TaskSpec, with SAS URLs
// from internal/storage, as Dispatch builds them) and added straight to
// Batch; only the command line is replaced by a copy of the input to the
// output name, so that making 5,000 outputs does not take 5,000 ffmpeg runs.
// The handler reaches Azurite and Batch through counting proxies, which
// give the calls per file and what they are.

// SweepFigures are the sweep phase's results (flattened into Result's JSON).
type SweepFigures struct {
	SweepFiles     int     `json:"sweep_files"`
	SweepSeconds   float64 `json:"sweep_seconds"`
	SweepFilesPerS float64 `json:"sweep_files_per_s"`
	// SweepHostStartSeconds is from the host's start to Sweep's first call
	// (not counted in SweepSeconds).
	SweepHostStartSeconds float64 `json:"sweep_host_start_seconds"`
	// Calls the handler made while settling, per file, by service.
	SweepStorageCallsPerFile float64 `json:"sweep_storage_calls_per_file"`
	SweepBatchCallsPerFile   float64 `json:"sweep_batch_calls_per_file"`
	// SweepCalls breaks them down ("storage GET", "batch DELETE", …).
	SweepCalls map[string]int `json:"sweep_calls,omitempty"`
	// SweepCPUMsPerFile is the CPU each part of the stack spent per file
	// while Sweep ran ("node" is Azurite, "handler" the function app,
	// "self" this process with the in-process Batch stand-in and host): a
	// figure the machine's other load does not move as it moves times.
	SweepCPUMsPerFile map[string]float64 `json:"sweep_cpu_ms_per_file,omitempty"`
	// SweepStorageBoundFilesPerS is what one core of Azurite could settle
	// at that CPU per file: the local bound when it is the busiest part.
	SweepStorageBoundFilesPerS float64 `json:"sweep_storage_bound_files_per_s,omitempty"`
	// SweepAzuriteMsPerCall is Azurite's CPU per storage call while Sweep
	// ran (its CPU per file over the storage calls per file).
	SweepAzuriteMsPerCall float64 `json:"sweep_azurite_ms_per_call,omitempty"`
	// SweepAzuriteAloneFilesPerS is Azurite alone serving a settled file's
	// storage calls (result read, output properties, input delete, record
	// read and create-only write) for a quarter of the files, as many in
	// flight as Sweep settles, straight from this process to the same
	// Azurite after the sweep: what storage allows at that account size
	// with nothing else in the way; SweepAzuriteAloneCPUMsPerFile is
	// Azurite's CPU per such file.
	SweepAzuriteAloneFilesPerS    float64 `json:"sweep_azurite_alone_files_per_s,omitempty"`
	SweepAzuriteAloneCPUMsPerFile float64 `json:"sweep_azurite_alone_cpu_ms_per_file,omitempty"`
}

// callCounter is a reverse proxy that counts requests by service and method.
type callCounter struct {
	srv    *httptest.Server
	mu     sync.Mutex
	counts map[string]int
	first  time.Time // of the first request since reset
	total  atomic.Int64
}

func newCallCounter(service, target string) (*callCounter, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("counting proxy for %s: %w", service, err)
	}
	c := &callCounter{counts: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.total.Add(1)
		c.mu.Lock()
		c.counts[service+" "+callKind(r)]++
		if c.first.IsZero() {
			c.first = time.Now()
		}
		c.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	return c, nil
}

// callKind names a request by method and, for storage, the operation.
func callKind(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case q.Get("comp") != "":
		return r.Method + " comp=" + q.Get("comp")
	case q.Get("restype") != "":
		return r.Method + " restype=" + q.Get("restype")
	}
	return r.Method
}

func (c *callCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = map[string]int{}
	c.first = time.Time{}
	c.total.Store(0)
}

func (c *callCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

func (r *runner) sweepPhase(ctx context.Context) error {
	n := r.o.SweepTasks
	p, stor, bat, err := r.sweepStack(ctx)
	if err != nil {
		return err
	}
	defer func() {
		_ = p.s.Close()
		stor.srv.Close()
		bat.srv.Close()
	}()
	for _, name := range []string{stack.EventGrid, stack.Host} {
		if err := p.s.Stop(name, false); err != nil {
			return err
		}
	}
	keys, err := r.sweepTasks(ctx, p, n)
	if err != nil {
		return err
	}
	stor.reset()
	bat.reset()
	r.progress("sweep: %d completed tasks wait; starting the Functions host …", n)
	cpu0 := stackCPUBreakdown()
	t0 := time.Now()
	if err := p.s.Restart(ctx, stack.Host); err != nil {
		return err
	}
	if err := r.waitEmptyJob(ctx, p, t0); err != nil {
		return err
	}
	// From Sweep's first call (it lists the completed tasks first): the
	// host's start is not Sweep's work.
	bat.mu.Lock()
	first := bat.first
	bat.mu.Unlock()
	if first.IsZero() || first.Before(t0) {
		first = t0
	}
	r.res.SweepHostStartSeconds = round(first.Sub(t0).Seconds(), 3)
	r.recordSweep(n, time.Since(first), cpu0, stor, bat)
	outputs, err := r.checkSwept(ctx, p, keys)
	if err != nil {
		return err
	}
	return r.sweepAzuriteAlone(ctx, p, keys, outputs)
}

// sweepStack starts the phase's stack with the handler reaching Azurite
// and Batch through counting proxies. The proxies need the stack's ports
// before it starts: they are picked first.
func (r *runner) sweepStack(ctx context.Context) (*pipe, *callCounter, *callCounter, error) {
	ports := stack.Ports{}
	var err error
	if ports.Azurite, err = stack.FreePort(); err != nil {
		return nil, nil, nil, err
	}
	if ports.Batch, err = stack.FreePort(); err != nil {
		return nil, nil, nil, err
	}
	stor, err := newCallCounter("storage", fmt.Sprintf("http://127.0.0.1:%d", ports.Azurite))
	if err != nil {
		return nil, nil, nil, err
	}
	bat, err := newCallCounter("batch", fmt.Sprintf("http://127.0.0.1:%d", ports.Batch))
	if err != nil {
		stor.srv.Close()
		return nil, nil, nil, err
	}
	opts := stack.Options{Ports: ports, Slots: max(8, r.o.TaskSlots), InMemoryStorage: r.o.SweepAzuriteInMemory, HostSettings: map[string]string{
		"DataStorage":           azurite.ConnectionString(stor.srv.URL + "/" + azurite.Account),
		"FFPIPE_BATCH_ENDPOINT": bat.srv.URL,
	}}
	p, err := r.startStack(ctx, "sweep", opts)
	if err != nil {
		stor.srv.Close()
		bat.srv.Close()
		return nil, nil, nil, err
	}
	return p, stor, bat, nil
}

// waitEmptyJob polls Batch's task counts until the job has no task left.
func (r *runner) waitEmptyJob(ctx context.Context, p *pipe, t0 time.Time) error {
	bc, err := p.s.BatchClient()
	if err != nil {
		return err
	}
	lastLeft := -1
	for {
		tc, err := bc.TaskCounts(ctx, p.cfg.BatchJob)
		if err == nil {
			left := tc.Active + tc.Running + tc.Completed
			if left == 0 {
				return nil
			}
			if left != lastLeft {
				r.progress("sweep: %d tasks left after %.1fs", left, time.Since(t0).Seconds())
				lastLeft = left
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sweep: %d tasks left: %w", lastLeft, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// recordSweep fills the phase's figures: n files settled in d, the calls
// the proxies counted, and the CPU each part spent since cpu0.
func (r *runner) recordSweep(n int, d time.Duration, cpu0 map[string]time.Duration, stor, bat *callCounter) {
	cpu1 := stackCPUBreakdown()
	r.res.SweepCPUMsPerFile = map[string]float64{}
	for k, v := range cpu1 {
		if ms := float64(v-cpu0[k]) / float64(time.Millisecond) / float64(n); ms > 0 {
			r.res.SweepCPUMsPerFile[k] = round(ms, 2)
		}
	}
	if az := r.res.SweepCPUMsPerFile["node"]; az > 0 {
		r.res.SweepStorageBoundFilesPerS = round(1000/az, 1)
		if c := stor.total.Load(); c > 0 {
			r.res.SweepAzuriteMsPerCall = round(az*float64(n)/float64(c), 2)
		}
	}
	calls := stor.snapshot()
	for k, v := range bat.snapshot() {
		calls[k] = v
	}
	r.res.SweepFiles, r.res.SweepSeconds = n, round(d.Seconds(), 3)
	r.res.SweepFilesPerS = round(Rate(n, d), 1)
	r.res.SweepStorageCallsPerFile = round(float64(stor.total.Load())/float64(n), 2)
	r.res.SweepBatchCallsPerFile = round(float64(bat.total.Load())/float64(n), 2)
	r.res.SweepCalls = calls
	r.progress("sweep: %d files settled in %.2fs: %.0f files/s; %.2f storage and %.2f Batch calls per file %v; CPU ms per file %v (Azurite alone would allow %.0f files/s)",
		n, d.Seconds(), r.res.SweepFilesPerS, r.res.SweepStorageCallsPerFile, r.res.SweepBatchCallsPerFile, sortedCalls(calls),
		r.res.SweepCPUMsPerFile, r.res.SweepStorageBoundFilesPerS)
}

func sortedCalls(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(out)
	return out
}

// sweepTasks uploads n small inputs and adds one completed-to-be task per
// input, then waits until every task has completed.
func (r *runner) sweepTasks(ctx context.Context, p *pipe, n int) ([]string, error) {
	st, err := storage.NewFromConnectionString(p.s.StorageConnectionString(), storage.Options{})
	if err != nil {
		return nil, err
	}
	preset, _ := presets.Default().Get(presets.DefaultName)
	defaults := request.Defaults{Preset: preset.Name, OutputContainer: p.cfg.OutputContainer, Ext: presets.Default().Ext}
	body := make([]byte, 2048)
	_, _ = rand.Read(body)
	r.progress("sweep: uploading %d inputs and adding their tasks …", n)
	specs := make([]azbatch.CreateTaskContent, n)
	keys := make([]string, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			specs[i], keys[i], errs[i] = r.sweepTask(ctx, p, st, preset, defaults, fmt.Sprintf("sweep/%06d.mp4", i), body)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	bc, err := p.s.BatchClient()
	if err != nil {
		return nil, err
	}
	for i := 0; i < n; i += 100 {
		chunk := specs[i:min(i+100, n)]
		if _, err := bc.SDK().CreateTaskCollection(ctx, p.cfg.BatchJob, azbatch.TaskGroup{Value: chunk}, nil); err != nil {
			return nil, fmt.Errorf("sweep: add tasks: %w", err)
		}
	}
	t0 := time.Now()
	for {
		tc, err := bc.TaskCounts(ctx, p.cfg.BatchJob)
		if err == nil && tc.Completed >= n && tc.Active+tc.Running == 0 {
			if tc.Failed > 0 {
				return nil, fmt.Errorf("sweep: %d of the copy tasks failed", tc.Failed)
			}
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("sweep: waiting for the tasks to complete: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
	r.progress("sweep: %d tasks completed in %.1fs", n, time.Since(t0).Seconds())
	return keys, nil
}

// sweepTask uploads one input and builds its task as Dispatch would, with
// a copy in place of ffmpeg.
func (r *runner) sweepTask(ctx context.Context, p *pipe, st *storage.Client, preset presets.Preset, d request.Defaults, blob string, body []byte) (azbatch.CreateTaskContent, string, error) {
	resp, err := p.blob.UploadBuffer(ctx, p.cfg.InputContainer, blob, body, nil)
	if err != nil {
		return azbatch.CreateTaskContent{}, "", fmt.Errorf("upload %s: %w", blob, err)
	}
	etag := etags.Normalize(string(*resp.ETag))
	req, err := request.Request{Source: request.Source{Container: p.cfg.InputContainer, Blob: blob, ETag: etag, Size: int64(len(body))}}.WithDefaults(d)
	if err != nil {
		return azbatch.CreateTaskContent{}, "", err
	}
	key := request.Key(p.cfg.StorageAccount(), p.cfg.InputContainer, blob, etag)
	spec := batch.TaskSpec{Key: key, Request: req, Profile: presets.OneOutput(preset), Enqueued: time.Now(),
		Outputs: []request.OutputBlob{{Name: preset.Name, Blob: req.Output.Blob}}, OutputURLs: make([]string, 1)}
	ttl := 2 * time.Hour
	if spec.InputURL, err = st.ReadURL(ctx, req.Source.Container, req.Source.Blob, ttl); err != nil {
		return azbatch.CreateTaskContent{}, "", err
	}
	if spec.OutputURLs[0], err = st.ContainerWriteURL(ctx, req.Output.Container, req.Output.Blob, ttl); err != nil {
		return azbatch.CreateTaskContent{}, "", err
	}
	stdout, stderr := batch.LogBlobs(key)
	if spec.StdoutURL, err = st.ContainerWriteURL(ctx, p.cfg.LogsContainer, stdout, ttl); err != nil {
		return azbatch.CreateTaskContent{}, "", err
	}
	if spec.StderrURL, err = st.ContainerWriteURL(ctx, p.cfg.LogsContainer, stderr, ttl); err != nil {
		return azbatch.CreateTaskContent{}, "", err
	}
	if spec.ResultURL, err = st.ContainerWriteURL(ctx, p.cfg.LogsContainer, batch.ResultBlob(key), ttl); err != nil {
		return azbatch.CreateTaskContent{}, "", err
	}
	c, err := spec.Content()
	if err != nil {
		return azbatch.CreateTaskContent{}, "", err
	}
	// A copy in place of ffmpeg, and the wrapper's verdict for it, so that
	// Sweep takes its real success path (it reads the result file).
	c.CommandLine = to.Ptr("/bin/sh -c 'cp " + presets.InputFile + " " + preset.OutputFile() +
		" && printf \"ffpipe-result 1\\nsource audio=1 video=0 height=0 duration=1\\noutput 0 duration=1\\nok\\n\" > " + presets.ResultFile + "'")
	return c, key, nil
}

// checkSwept verifies what settled means for every key: a done record,
// the input gone, the output present. It returns each key's output.
func (r *runner) checkSwept(ctx context.Context, p *pipe, keys []string) ([]records.Blob, error) {
	outputs := make([]records.Blob, len(keys))
	bad := 0
	var first error
	for i, k := range keys {
		rec, err := p.recs.Get(ctx, k)
		outputs[i] = rec.Output
		switch {
		case err != nil:
			err = fmt.Errorf("record %s: %w", k, err)
		case rec.State != records.StateDone:
			err = fmt.Errorf("record %s: %s: %s", k, rec.State, rec.Reason)
		}
		if err == nil {
			if _, e := p.blob.ServiceClient().NewContainerClient(p.cfg.InputContainer).NewBlobClient(rec.Source.Blob).GetProperties(ctx, nil); e == nil {
				err = fmt.Errorf("input %s still there", rec.Source.Blob)
			}
		}
		if err == nil {
			if _, e := p.blob.ServiceClient().NewContainerClient(rec.Output.Container).NewBlobClient(rec.Output.Blob).GetProperties(ctx, nil); e != nil {
				err = fmt.Errorf("output %s: %w", rec.Output.Blob, e)
			}
		}
		if err != nil {
			bad++
			if first == nil {
				first = err
			}
		}
	}
	if bad > 0 {
		return nil, fmt.Errorf("sweep: %d of %d files not settled as done, e.g. %w", bad, len(keys), first)
	}
	r.progress("sweep: all %d files checked: record done, input deleted, output present", len(keys))
	return outputs, nil
}

// sweepAzuriteAlone makes, straight against the phase's Azurite (its
// account as the sweep left it), the storage calls of settling a quarter of
// the phase's files again, with as many files in flight as Sweep settles:
// each file's result file read (one ranged GET) and output properties (the
// sweep's own blobs), an input's If-Match delete and a record's read (none
// yet) and create-only write (new blobs, written first outside the clock:
// a quarter, so that the account grows little beyond its size during the
// sweep).
func (r *runner) sweepAzuriteAlone(ctx context.Context, p *pipe, keys []string, outputs []records.Blob) error {
	st, err := storage.NewFromConnectionString(p.s.StorageConnectionString(), storage.Options{})
	if err != nil {
		return err
	}
	n := max(len(keys)/4, min(len(keys), 50))
	body := make([]byte, 2048)
	tags := make([]string, n)
	name := func(i int) string { return fmt.Sprintf("azurite-alone/%06d", i) }
	if err := parallelN(ctx, n, 32, func(i int) error {
		if err := st.Put(ctx, p.cfg.InputContainer, name(i), body, "video/mp4", nil); err != nil {
			return err
		}
		pr, err := st.Properties(ctx, p.cfg.InputContainer, name(i))
		tags[i] = pr.ETag
		return err
	}); err != nil {
		return fmt.Errorf("sweep: azurite alone: %w", err)
	}
	rec := []byte(`{"key":"k","state":"done","timings":{}}`)
	par := 16 // the handler's FFPIPE_SWEEP_PARALLELISM default
	if v, err := strconv.Atoi(r.o.Settings["FFPIPE_SWEEP_PARALLELISM"]); err == nil && v > 0 {
		par = v
	}
	cpu0 := stackCPUBreakdown()["node"]
	t0 := time.Now()
	err = parallelN(ctx, n, par, func(i int) error {
		if _, err := st.Tail(ctx, p.cfg.LogsContainer, batch.ResultBlob(keys[i]), presets.MaxResultBytes); err != nil {
			return err
		}
		if _, err := st.Properties(ctx, outputs[i].Container, outputs[i].Blob); err != nil {
			return err
		}
		if err := st.DeleteIfMatch(ctx, p.cfg.InputContainer, name(i), tags[i]); err != nil {
			return err
		}
		if _, _, err := st.GetWithETag(ctx, p.cfg.StatusContainer, name(i)); !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("record read: got %v, want not found", err)
		}
		return st.PutIf(ctx, p.cfg.StatusContainer, name(i), rec, "application/json", map[string]string{"state": "done"}, "")
	})
	d, cpu := time.Since(t0), stackCPUBreakdown()["node"]-cpu0
	if err != nil {
		return fmt.Errorf("sweep: azurite alone: %w", err)
	}
	r.res.SweepAzuriteAloneFilesPerS = round(Rate(n, d), 1)
	r.res.SweepAzuriteAloneCPUMsPerFile = round(float64(cpu)/float64(time.Millisecond)/float64(n), 2)
	r.progress("sweep: Azurite alone, a settled file's 5 storage calls for %d files at this account size, %d in flight: %.0f files/s, %.2f ms of its CPU per file",
		n, par, r.res.SweepAzuriteAloneFilesPerS, r.res.SweepAzuriteAloneCPUMsPerFile)
	return nil
}
