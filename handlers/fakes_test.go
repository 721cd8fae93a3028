package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/etags"
	"github.com/ffpipe/ffpipe/internal/presets"
	"github.com/ffpipe/ffpipe/internal/queue"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/storage"
)

// fakeBlobs is an in-memory blob store: Blobs, Signer, and records.Blobs.
type fakeBlobs struct {
	mu    sync.Mutex
	blobs map[string]*fakeBlob // "container/name"
	seq   int
	now   func() time.Time
	// fail makes an operation fail: key is "op container/name" or "op".
	fail map[string]error
	ops  []string
}

type fakeBlob struct {
	data     []byte
	etag     string
	modified time.Time
	meta     map[string]string
}

var (
	_ Blobs         = (*fakeBlobs)(nil)
	_ Signer        = (*fakeBlobs)(nil)
	_ records.Blobs = (*fakeBlobs)(nil)
)

func newFakeBlobs(now func() time.Time) *fakeBlobs {
	return &fakeBlobs{blobs: map[string]*fakeBlob{}, now: now, fail: map[string]error{}}
}

func (f *fakeBlobs) failure(op, cont, name string) error {
	f.ops = append(f.ops, op+" "+cont+"/"+name)
	if err, ok := f.fail[op+" "+cont+"/"+name]; ok {
		return err
	}
	return f.fail[op]
}

func (f *fakeBlobs) put(cont, name string, data []byte, modified time.Time) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	etag := fmt.Sprintf("0x8DC%012X", f.seq)
	f.blobs[cont+"/"+name] = &fakeBlob{data: data, etag: etag, modified: modified, meta: map[string]string{}}
	return etag
}

func (f *fakeBlobs) get(cont, name string) (*fakeBlob, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.blobs[cont+"/"+name]
	return b, ok
}

func (f *fakeBlobs) Properties(_ context.Context, cont, name string) (storage.Props, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure("props", cont, name); err != nil {
		return storage.Props{}, err
	}
	b, ok := f.blobs[cont+"/"+name]
	if !ok {
		return storage.Props{}, fmt.Errorf("props %s/%s: %w", cont, name, storage.ErrNotFound)
	}
	return storage.Props{ETag: b.etag, Size: int64(len(b.data)), LastModified: b.modified, Metadata: b.meta}, nil
}

func (f *fakeBlobs) DeleteIfMatch(_ context.Context, cont, name, etag string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure("delete", cont, name); err != nil {
		return err
	}
	b, ok := f.blobs[cont+"/"+name]
	if !ok {
		return storage.ErrNotFound
	}
	if b.etag != etags.Normalize(etag) {
		return storage.ErrConditionNotMet
	}
	delete(f.blobs, cont+"/"+name)
	return nil
}

func (f *fakeBlobs) Delete(_ context.Context, cont, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure("delete", cont, name); err != nil {
		return err
	}
	if _, ok := f.blobs[cont+"/"+name]; !ok {
		return storage.ErrNotFound
	}
	delete(f.blobs, cont+"/"+name)
	return nil
}

func (f *fakeBlobs) Move(_ context.Context, sc, sn, etag, dc, dn string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure("move", sc, sn); err != nil {
		return err
	}
	b, ok := f.blobs[sc+"/"+sn]
	if !ok {
		return storage.ErrNotFound
	}
	if b.etag != etags.Normalize(etag) {
		return storage.ErrConditionNotMet
	}
	// A copy is a new blob: a new eTag, as in Blob Storage.
	f.putLocked(dc, dn, b.data, b.meta)
	delete(f.blobs, sc+"/"+sn)
	return nil
}

func (f *fakeBlobs) Tail(_ context.Context, cont, name string, n int64) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure("tail", cont, name); err != nil {
		return nil, err
	}
	b, ok := f.blobs[cont+"/"+name]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return b.data[max(0, int64(len(b.data))-n):], nil
}

func (f *fakeBlobs) List(_ context.Context, cont, prefix string, fn func(storage.Item) bool) error {
	f.mu.Lock()
	if err := f.failure("list", cont, ""); err != nil {
		f.mu.Unlock()
		return err
	}
	var items []storage.Item
	for k, b := range f.blobs {
		c, n, _ := strings.Cut(k, "/")
		if c == cont && strings.HasPrefix(n, prefix) {
			items = append(items, storage.Item{Name: n, ETag: b.etag, Size: int64(len(b.data)), LastModified: b.modified, Metadata: b.meta})
		}
	}
	f.mu.Unlock()
	sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
	for _, it := range items {
		if !fn(it) {
			break
		}
	}
	return nil
}

func (f *fakeBlobs) Put(_ context.Context, cont, name string, data []byte, _ string, md map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure("put", cont, name); err != nil {
		return err
	}
	f.putLocked(cont, name, data, md)
	return nil
}

func (f *fakeBlobs) putLocked(cont, name string, data []byte, md map[string]string) {
	f.seq++
	m := map[string]string{}
	for k, v := range md {
		m[k] = v
	}
	f.blobs[cont+"/"+name] = &fakeBlob{data: bytes.Clone(data), etag: fmt.Sprintf("0x8DC%012X", f.seq), modified: f.now(), meta: m}
}

func (f *fakeBlobs) PutIf(_ context.Context, cont, name string, data []byte, _ string, md map[string]string, ifMatch string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure("put", cont, name); err != nil {
		return err
	}
	b, ok := f.blobs[cont+"/"+name]
	if (ifMatch == "" && ok) || (ifMatch != "" && (!ok || b.etag != ifMatch)) {
		return storage.ErrConditionNotMet
	}
	f.putLocked(cont, name, data, md)
	return nil
}

func (f *fakeBlobs) Get(ctx context.Context, cont, name string) ([]byte, error) {
	b, _, err := f.GetWithETag(ctx, cont, name)
	return b, err
}

func (f *fakeBlobs) GetWithETag(_ context.Context, cont, name string) ([]byte, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure("get", cont, name); err != nil {
		return nil, "", err
	}
	b, ok := f.blobs[cont+"/"+name]
	if !ok {
		return nil, "", storage.ErrNotFound
	}
	return bytes.Clone(b.data), b.etag, nil
}

const fakeBase = "https://ingestacct.blob.core.windows.net/"

func (f *fakeBlobs) BlobURL(cont, name string) string { return fakeBase + cont + "/" + name }
func (f *fakeBlobs) ContainerURL(cont string) string  { return fakeBase + cont }
func (f *fakeBlobs) ReadURL(_ context.Context, cont, name string, ttl time.Duration) (string, error) {
	return fmt.Sprintf("%s%s/%s?sp=r&sr=b&ttl=%s&sig=x", fakeBase, cont, name, ttl), nil
}
func (f *fakeBlobs) ContainerWriteURL(_ context.Context, cont, name string, ttl time.Duration) (string, error) {
	// scope= stands for the blob the real signature is bound to.
	return fmt.Sprintf("%s%s?sp=cw&sr=b&ttl=%s&sig=x&scope=%s", fakeBase, cont, ttl, url.QueryEscape(name)), nil
}

// fakeQueue records sent messages.
type fakeQueue struct {
	mu   sync.Mutex
	sent []queue.Message
	err  error
}

func (q *fakeQueue) Send(_ context.Context, m queue.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	q.sent = append(q.sent, m)
	return nil
}

func (q *fakeQueue) fail(err error) {
	q.mu.Lock()
	q.err = err
	q.mu.Unlock()
}

func (q *fakeQueue) messages() []queue.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]queue.Message(nil), q.sent...)
}

// fakeBatch is a Batch job: TaskSubmitter and TaskSweeper.
type fakeBatch struct {
	mu        sync.Mutex
	tasks     map[string]batch.TaskSpec
	ensureErr error
	ensures   int
	addErr    error
	addCalls  int
	permanent map[string]error // key → client error for AddTasks
	completed []batch.CompletedTask
	progress  map[string]batch.Progress // running tasks' progress
	listErr   error
	lists     int    // ListCompleted calls
	onList    func() // called by ListCompleted, outside the lock
	existsErr error
	deleteErr error
	deleted   []string
	taskErr   error                // Task and TaskCounts fail with it
	created   map[string]time.Time // creation time per key (AddTasks, from now)
	running   map[string]time.Time // start time of a running task
	now       func() time.Time
}

var (
	_ TaskSubmitter = (*fakeBatch)(nil)
	_ TaskSweeper   = (*fakeBatch)(nil)
	_ TaskReader    = (*fakeBatch)(nil)
)

func newFakeBatch(now func() time.Time) *fakeBatch {
	return &fakeBatch{tasks: map[string]batch.TaskSpec{}, permanent: map[string]error{},
		created: map[string]time.Time{}, running: map[string]time.Time{}, now: now}
}

func (b *fakeBatch) EnsureJob(_ context.Context, job, pool string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ensures++
	return b.ensureErr
}

func (b *fakeBatch) AddTasks(_ context.Context, job string, specs []batch.TaskSpec) ([]batch.AddResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addCalls++
	if b.addErr != nil {
		return nil, b.addErr
	}
	out := make([]batch.AddResult, len(specs))
	for i, s := range specs {
		if err := s.Validate(); err != nil {
			out[i] = batch.AddResult{Key: s.Key, Err: err, Permanent: true}
			continue
		}
		if err, ok := b.permanent[s.Key]; ok {
			out[i] = batch.AddResult{Key: s.Key, Err: err, Permanent: true}
			continue
		}
		_, exists := b.tasks[s.Key]
		b.tasks[s.Key] = s
		if !exists {
			b.created[s.Key] = b.now()
		}
		out[i] = batch.AddResult{Key: s.Key, Existed: exists}
	}
	return out, nil
}

func (b *fakeBatch) ListCompleted(_ context.Context, job string, max int) ([]batch.CompletedTask, error) {
	if b.onList != nil {
		b.onList()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lists++
	if b.listErr != nil {
		return nil, b.listErr
	}
	var out []batch.CompletedTask
	for _, t := range b.completed {
		if _, ok := b.tasks[t.Key]; ok && len(out) < max {
			out = append(out, t)
		}
	}
	return out, nil
}

func (b *fakeBatch) TaskExists(_ context.Context, job, key string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.existsErr != nil {
		return false, b.existsErr
	}
	_, ok := b.tasks[key]
	return ok, nil
}

func (b *fakeBatch) DeleteTask(_ context.Context, job, key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.deleteErr != nil {
		return b.deleteErr
	}
	delete(b.tasks, key)
	b.deleted = append(b.deleted, key)
	return nil
}

func (b *fakeBatch) Running(_ context.Context, job string, max int) ([]batch.RunningTask, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []batch.RunningTask
	for key, started := range b.running {
		spec := b.tasks[key]
		out = append(out, batch.RunningTask{Key: key, TaskInfo: batch.TaskInfo{State: "running", Created: b.created[key], Started: started, Request: spec.Request}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (b *fakeBatch) Progress(_ context.Context, job, key string, started time.Time) (batch.Progress, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.progress[key]
	if !ok {
		return batch.Progress{}, batch.ErrTaskFileNotFound
	}
	return p, nil
}

func (b *fakeBatch) Task(_ context.Context, job, key string) (batch.TaskInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.taskErr != nil {
		return batch.TaskInfo{}, b.taskErr
	}
	spec, ok := b.tasks[key]
	if !ok {
		return batch.TaskInfo{}, fmt.Errorf("get task %s: %w", key, batch.ErrTaskNotFound)
	}
	ti := batch.TaskInfo{State: "active", Created: b.created[key], Request: spec.Request, Enqueued: spec.Enqueued}
	if st, ok := b.running[key]; ok {
		ti.State, ti.Started = "running", st
	}
	for _, c := range b.completed {
		if c.Key == key {
			ti.State, ti.Started = "completed", c.Start
		}
	}
	return ti, nil
}

func (b *fakeBatch) TaskCounts(_ context.Context, job string) (batch.TaskCounts, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.taskErr != nil {
		return batch.TaskCounts{}, b.taskErr
	}
	var tc batch.TaskCounts
	done := map[string]bool{}
	for _, c := range b.completed {
		done[c.Key] = true
	}
	for k := range b.tasks {
		_, run := b.running[k]
		switch {
		case done[k]:
			tc.Completed++
		case run:
			tc.Running++
		default:
			tc.Active++
		}
	}
	return tc, nil
}

func (b *fakeBatch) has(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.tasks[key]
	return ok
}

// env is one handler under test with its fakes.
type env struct {
	t       *testing.T
	cfg     config.Config
	now     time.Time
	blobs   *fakeBlobs
	queue   *fakeQueue
	events  *fakeQueue
	batch   *fakeBatch
	records *records.Store
	logs    *bytes.Buffer
	deps    Deps // as New got them: a test may swap one and call New again
	h       http.Handler
}

var errTransient = errors.New("503 server busy")

func testConfig(t *testing.T, change func(m map[string]string)) config.Config {
	t.Helper()
	m := map[string]string{
		"ServiceBusConnection":   "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=Root;SharedAccessKey=SECRETKEY;UseDevelopmentEmulator=true;",
		"DataStorage":            "DefaultEndpointsProtocol=https;AccountName=ingestacct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
		"FFPIPE_BATCH_ENDPOINT":  "http://127.0.0.1:8090",
		"FFPIPE_BATCH_TOKEN":     "tok",
		"FFPIPE_LOG_FORMAT":      "json",
		"FFPIPE_MAX_INPUT_BYTES": "1000000",
		"FFPIPE_SWEEP_MAX_TASKS": "50",
	}
	if change != nil {
		change(m)
	}
	c, err := config.Load(config.FromMap(m))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func newEnv(t *testing.T, change func(m map[string]string)) *env {
	t.Helper()
	e := &env{t: t, cfg: testConfig(t, change), now: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), logs: &bytes.Buffer{}}
	clock := func() time.Time { return e.now }
	e.blobs = newFakeBlobs(clock)
	e.queue = &fakeQueue{}
	e.events = &fakeQueue{}
	e.batch = newFakeBatch(clock)
	e.records = records.New(e.blobs, e.cfg.StatusContainer, clock).WithIndex(
		records.NewIndex(e.blobs, e.cfg.IndexContainer, e.cfg.RecordRetention, clock),
		func(key string, err error) { t.Logf("index of %s not updated: %v", key, err) })
	d := Deps{
		Log:       config.NewLogger(e.cfg, &lockedWriter{w: e.logs}),
		Queue:     e.queue,
		Blobs:     e.blobs,
		SAS:       e.blobs,
		Records:   e.records,
		Submitter: e.batch,
		Sweeper:   e.batch,
		Tasks:     e.batch,
		Presets:   presets.Default(),
		Events:    e.events,
		Outbox:    e.records.Index(),
		Spend:     e.records.Index(),
		Now:       clock,
	}
	if err := Check(e.cfg, d); err != nil {
		t.Fatal(err)
	}
	e.deps, e.h = d, New(e.cfg, d)
	return e
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// invoke POSTs an invocation body to /<function> and decodes the answer.
func (e *env) invoke(function string, body []byte) (int, InvokeResponse) {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/"+function, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-Azure-Functions-InvocationId", "inv-1")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		e.t.Errorf("%s: Content-Type got %q, want application/json", function, ct)
	}
	var resp InvokeResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		e.t.Fatalf("%s: response is not JSON: %q", function, rec.Body.String())
	}
	return rec.Code, resp
}

func (e *env) record(key string) records.Record {
	e.t.Helper()
	r, err := e.records.Get(context.Background(), key)
	if err != nil {
		e.t.Fatalf("record %s: %v", key, err)
	}
	return r
}

func (e *env) noRecord(key string) {
	e.t.Helper()
	if r, err := e.records.Get(context.Background(), key); !errors.Is(err, records.ErrNotFound) {
		e.t.Fatalf("record %s: got %+v, %v; want none", key, r, err)
	}
}

func golden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// envelope wraps a trigger value the way the host does for strings:
// JsonConvert.SerializeObject(text), then embedded in Data.
func envelope(binding string, text string) []byte {
	inner, _ := json.Marshal(text)
	b, _ := json.Marshal(InvokeRequest{Data: map[string]json.RawMessage{binding: mustJSON(string(inner))}, Metadata: map[string]json.RawMessage{}})
	return b
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
