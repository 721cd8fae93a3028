package handlers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/storage"
)

// batchEnvelope is a Dispatch invocation with cardinality many and
// dataType string: Data.messages is a JSON string holding an array of
// body strings.
func batchEnvelope(ids []string, bodies ...string) []byte {
	arr, _ := json.Marshal(bodies)
	md := map[string]json.RawMessage{}
	if ids != nil {
		idArr, _ := json.Marshal(ids)
		md["MessageIdArray"] = mustJSON(string(idArr))
	}
	b, _ := json.Marshal(InvokeRequest{Data: map[string]json.RawMessage{BindingMessages: mustJSON(string(arr))}, Metadata: md})
	return b
}

func body(blob string, extra string) string {
	return fmt.Sprintf(`{"v":1,"source":{"container":"input","blob":%q}%s}`, blob, extra)
}

func bodyKey(b string) string {
	h := sha256.Sum256([]byte(b))
	return hex.EncodeToString(h[:])[:32]
}

func TestDispatchGoldenBatch(t *testing.T) {
	e := newEnv(t, nil)
	etag := e.blobs.put("input", "a.mp4", []byte("0123456789"), e.now)
	code, resp := e.invoke(FuncDispatch, golden(t, "servicebus_batch.json"))
	if code != http.StatusOK {
		t.Fatalf("status: got %d, want 200 (logs %v)", code, resp.Logs)
	}
	key := request.Key("ingestacct", "input", "a.mp4", etag)
	if !e.batch.has(key) || len(e.batch.tasks) != 1 {
		t.Fatalf("tasks: got %v, want exactly %s", e.batch.tasks, key)
	}
	spec := e.batch.tasks[key]
	checks := []struct {
		name      string
		got, want any
	}{
		{"output", spec.Request.Output, request.Output{Container: "output", Blob: "a.mp3"}},
		{"profile", spec.Profile.Name, "mp3"},
		{"size filled", spec.Request.Source.Size, int64(10)},
		{"etag filled", spec.Request.Source.ETag, etag},
		{"correlation from message", spec.Request.CorrelationID, "corr-1"},
		// 30 min, plus a minute per 100 MiB for an audio output (rounded up to the second)
		{"wall clock", spec.Constraints.MaxWallClock, e.cfg.TaskMaxWallClock + time.Second},
		{"slots", spec.Constraints.RequiredSlots, 1},
		{"outputs", len(spec.Outputs), 1},
		{"retries", spec.Constraints.MaxRetries, 2},
		{"no node identity", spec.NodeIdentity, ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	for name, u := range map[string]string{"input": spec.InputURL, "output": spec.OutputURLs[0], "stdout": spec.StdoutURL, "stderr": spec.StderrURL} {
		// FFPIPE_SAS_EXPIRY plus the wall clock's growth over the base
		if !strings.Contains(u, "sig=") || !strings.Contains(u, "ttl=2h0m1s") {
			t.Errorf("%s URL %q: want a SAS with the configured expiry", name, u)
		}
	}
	if !strings.Contains(spec.InputURL, "sp=r&") || !strings.Contains(spec.OutputURLs[0], "sp=cw&sr=b") {
		t.Errorf("SAS scopes: input %q, output %q", spec.InputURL, spec.OutputURLs[0])
	}
	// Each log file gets its own one-blob SAS, never the whole container.
	for name, u := range map[string]string{"stdout.txt": spec.StdoutURL, "stderr.txt": spec.StderrURL} {
		if !strings.Contains(u, "sp=cw&sr=b") || !strings.Contains(u, name) {
			t.Errorf("%s SAS %q: want create/write on that one blob", name, u)
		}
	}
	// EnqueuedTimeUtcArray: .NET's rendering, a fraction and no offset (UTC).
	if want := time.Date(2026, 3, 1, 9, 12, 33, 123456700, time.UTC); !spec.Enqueued.Equal(want) {
		t.Errorf("enqueued: got %v, want %v", spec.Enqueued, want)
	}
	// The task is the record of the dispatch: no status record per task.
	e.noRecord(key)
	if rec := e.record(bodyKey("plain text body")); rec.State != records.StateBadRequest || !strings.HasPrefix(rec.Reason, "bad_request") {
		t.Errorf("bad request record: got %s %q", rec.State, rec.Reason)
	}
	var found bool
	_ = e.blobs.List(t.Context(), "status", "", func(it storage.Item) bool {
		r := e.record(it.Name)
		if r.State == records.StateInputMissing && r.Source.Blob == "missing.mp4" && r.CorrelationID == "corr-3" {
			found = true
		}
		return true
	})
	if !found {
		t.Errorf("no input_missing record for missing.mp4")
	}
}

func TestDispatchBranches(t *testing.T) {
	type setup struct {
		e    *env
		keys map[string]string // blob → key
	}
	tests := []struct {
		name     string
		config   func(m map[string]string)
		prepare  func(s *setup)
		ids      []string
		bodies   []string
		wantCode int
		check    func(t *testing.T, s *setup)
	}{
		{
			name: "partial failure: one task rejected by Batch, the others added",
			prepare: func(s *setup) {
				s.e.batch.permanent[s.keys["b.mp4"]] = &batch.TaskError{Code: "InvalidPropertyValue", Message: "bad"}
			},
			bodies:   []string{body("a.mp4", ""), body("b.mp4", ""), body("c.mp4", "")},
			wantCode: http.StatusOK,
			check: func(t *testing.T, s *setup) {
				for _, b := range []string{"a.mp4", "c.mp4"} {
					if !s.e.batch.has(s.keys[b]) {
						t.Errorf("%s: no task", b)
					}
					s.e.noRecord(s.keys[b])
				}
				r := s.e.record(s.keys["b.mp4"])
				if r.State != records.StateFailed || !strings.Contains(r.Reason, "batch_rejected") || !strings.Contains(r.Reason, "InvalidPropertyValue") {
					t.Errorf("b.mp4: got %s %q, want failed batch_rejected", r.State, r.Reason)
				}
			},
		},
		{
			name:     "throttled or server error: 500, nothing recorded as dispatched",
			prepare:  func(s *setup) { s.e.batch.addErr = fmt.Errorf("addtaskcollection: 503 ServerBusy") },
			bodies:   []string{body("a.mp4", ""), body("b.mp4", "")},
			wantCode: http.StatusInternalServerError,
			check: func(t *testing.T, s *setup) {
				s.e.noRecord(s.keys["a.mp4"])
			},
		},
		{
			name: "existing task counts as success",
			prepare: func(s *setup) {
				s.e.batch.tasks[s.keys["a.mp4"]] = batch.TaskSpec{Key: s.keys["a.mp4"]}
			},
			bodies:   []string{body("a.mp4", "")},
			wantCode: http.StatusOK,
			check: func(t *testing.T, s *setup) {
				if !s.e.batch.has(s.keys["a.mp4"]) || s.e.batch.addCalls != 1 {
					t.Errorf("task: got %v after %d calls, want it kept", s.e.batch.has(s.keys["a.mp4"]), s.e.batch.addCalls)
				}
				s.e.noRecord(s.keys["a.mp4"])
			},
		},
		{
			name:     "storage unavailable: 500",
			prepare:  func(s *setup) { s.e.blobs.fail["props"] = errTransient },
			bodies:   []string{body("a.mp4", "")},
			wantCode: http.StatusInternalServerError,
			check: func(t *testing.T, s *setup) {
				if s.e.batch.addCalls != 0 {
					t.Errorf("AddTasks called %d times, want 0", s.e.batch.addCalls)
				}
			},
		},
		{
			name:     "pool missing: 500 with a clear error",
			prepare:  func(s *setup) { s.e.batch.ensureErr = fmt.Errorf("ensure job: %w", batch.ErrPoolNotFound) },
			bodies:   []string{body("a.mp4", "")},
			wantCode: http.StatusInternalServerError,
			check: func(t *testing.T, s *setup) {
				if !strings.Contains(s.e.logs.String(), "pool") || !strings.Contains(s.e.logs.String(), "ffpipe pool ensure") {
					t.Errorf("log does not explain the missing pool: %s", s.e.logs.String())
				}
			},
		},
		{
			// Dispatch reads no records: a request redelivered after its
			// work finished adds a task again, whose download then fails
			// (Sweep deleted the input); the done record stays (Replaces).
			name: "finished key: the record is not read and stays done",
			prepare: func(s *setup) {
				_ = s.e.records.Put(t.Context(), records.Record{Key: s.keys["a.mp4"], State: records.StateDone})
			},
			bodies:   []string{body("a.mp4", "")},
			wantCode: http.StatusOK,
			check: func(t *testing.T, s *setup) {
				if r := s.e.record(s.keys["a.mp4"]); r.State != records.StateDone {
					t.Errorf("state: got %s, want done", r.State)
				}
			},
		},
		{
			// OnBlobCreated's requests carry the eTag and size from the
			// event (and the profile its metadata names): Dispatch takes
			// them as they are, with no storage call.
			name: "complete request: no storage call",
			prepare: func(s *setup) {
				s.e.blobs.fail["props"] = errTransient // would fail the batch if called
			},
			bodies:   []string{`{"v":1,"source":{"container":"input","blob":"gone.mp4","etag":"0xABC","size":10}}`},
			wantCode: http.StatusOK,
			check: func(t *testing.T, s *setup) {
				key := request.Key("ingestacct", "input", "gone.mp4", "0xABC")
				spec, ok := s.e.batch.tasks[key]
				if !ok || spec.Request.Source.Size != 10 || spec.Request.Output.Blob != "gone.mp3" {
					t.Errorf("task %s: got %v %+v, want one from the request's facts", key, ok, spec.Request)
				}
			},
		},
		{
			name:    "complete request naming a profile: no storage call",
			prepare: func(s *setup) { s.e.blobs.fail["props"] = errTransient },
			bodies:  []string{`{"v":1,"source":{"container":"input","blob":"gone.mp4","etag":"0xABC","size":10},"profile":"podcast"}`},
			check: func(t *testing.T, s *setup) {
				spec, ok := s.e.batch.tasks[request.Key("ingestacct", "input", "gone.mp4", "0xABC")]
				if !ok || spec.Profile.Name != "podcast" || len(spec.Outputs) != 3 {
					t.Errorf("task: got %v %+v, want a podcast task", ok, spec.Profile)
				}
			},
			wantCode: http.StatusOK,
		},
		{
			name: "metadata chooses the profile of a request Dispatch looks up",
			prepare: func(s *setup) {
				b, _ := s.e.blobs.get("input", "a.mp4")
				b.meta["Ffpipe_Profile"] = "web"
			},
			bodies:   []string{body("a.mp4", "")},
			wantCode: http.StatusOK,
			check: func(t *testing.T, s *setup) {
				spec := s.e.batch.tasks[s.keys["a.mp4"]]
				wantOuts := []request.OutputBlob{{Name: "mp4-720", Blob: "a.mp4"}, {Name: "thumbnail", Blob: "a.jpg"}}
				if spec.Profile.Name != "web" || !slices.Equal(spec.Outputs, wantOuts) || spec.Constraints.RequiredSlots != 2 {
					t.Errorf("task: profile %s outputs %v slots %d, want web %v 2", spec.Profile.Name, spec.Outputs, spec.Constraints.RequiredSlots, wantOuts)
				}
			},
		},
		{
			name:   "the request's profile beats the metadata and a route",
			config: func(m map[string]string) { m["FFPIPE_ROUTES"] = `{"a": "podcast"}` },
			prepare: func(s *setup) {
				b, _ := s.e.blobs.get("input", "a.mp4")
				b.meta["ffpipe_profile"] = "web"
			},
			bodies:   []string{`{"source":{"container":"input","blob":"a.mp4"},"profile":"hls"}`},
			wantCode: http.StatusOK,
			check: func(t *testing.T, s *setup) {
				spec := s.e.batch.tasks[s.keys["a.mp4"]]
				if spec.Profile.Name != "hls" || spec.Outputs[0].Folder != "a/hls" || !strings.HasSuffix(spec.OutputURLs[0], "&scope=") {
					t.Errorf("task: profile %s outputs %v url %s, want hls in a/hls with a container SAS", spec.Profile.Name, spec.Outputs, spec.OutputURLs[0])
				}
			},
		},
		{
			name:     "a route beats the default",
			config:   func(m map[string]string) { m["FFPIPE_ROUTES"] = `{"b": "podcast"}` },
			bodies:   []string{body("b.mp4", "")},
			wantCode: http.StatusOK,
			check: func(t *testing.T, s *setup) {
				if spec := s.e.batch.tasks[s.keys["b.mp4"]]; spec.Profile.Name != "podcast" {
					t.Errorf("task profile %s, want podcast (route)", spec.Profile.Name)
				}
			},
		},
		{
			name: "unknown profile in the metadata: failed unknown_profile, no task, no retry",
			prepare: func(s *setup) {
				b, _ := s.e.blobs.get("input", "a.mp4")
				b.meta["ffpipe_profile"] = "nope"
			},
			bodies:   []string{body("a.mp4", "")},
			wantCode: http.StatusOK,
			check: func(t *testing.T, s *setup) {
				r := s.e.record(s.keys["a.mp4"])
				if r.State != records.StateFailed || !strings.HasPrefix(r.Reason, "unknown_profile") || !strings.Contains(r.Reason, "metadata") || len(s.e.batch.tasks) != 0 {
					t.Errorf("record %s %q, %d tasks; want failed unknown_profile (chosen by metadata), none", r.State, r.Reason, len(s.e.batch.tasks))
				}
			},
		},
		{
			name:     "unknown profile in the request",
			bodies:   []string{`{"source":{"container":"input","blob":"a.mp4"},"profile":"nope"}`},
			wantCode: http.StatusOK,
			check: func(t *testing.T, s *setup) {
				if r := s.e.record(s.keys["a.mp4"]); r.State != records.StateFailed || !strings.HasPrefix(r.Reason, "unknown_profile") {
					t.Errorf("record %s %q, want failed unknown_profile", r.State, r.Reason)
				}
			},
		},
		{
			name:     "complete request over the size limit: rejected without a storage call",
			prepare:  func(s *setup) { s.e.blobs.fail["props"] = errTransient },
			bodies:   []string{`{"v":1,"source":{"container":"input","blob":"big.mp4","etag":"0xABC","size":1000001}}`},
			wantCode: http.StatusOK,
			check: func(t *testing.T, s *setup) {
				r := s.e.record(request.Key("ingestacct", "input", "big.mp4", "0xABC"))
				if r.State != records.StateRejected || !strings.HasPrefix(r.Reason, "too_large") {
					t.Errorf("record: got %s %q, want rejected too_large", r.State, r.Reason)
				}
			},
		},
		{
			name:     "changed input: input_missing",
			bodies:   []string{`{"v":1,"source":{"container":"input","blob":"a.mp4","etag":"0xOLD"}}`},
			wantCode: http.StatusOK,
			check: func(t *testing.T, s *setup) {
				r := s.e.record(request.Key("ingestacct", "input", "a.mp4", "0xOLD"))
				if r.State != records.StateInputMissing || !strings.Contains(r.Reason, "changed") {
					t.Errorf("record: got %s %q", r.State, r.Reason)
				}
			},
		},
		{
			name:     "foreign containers: bad_request",
			bodies:   []string{`{"v":1,"source":{"container":"status","blob":"x.mp4"}}`, `{"v":1,"source":{"container":"input","blob":"a.mp4"},"output":{"container":"input","blob":"z.mp3"}}`},
			ids:      []string{"m1", "m2"},
			wantCode: http.StatusOK,
			check: func(t *testing.T, s *setup) {
				for _, b := range []string{`{"v":1,"source":{"container":"status","blob":"x.mp4"}}`, `{"v":1,"source":{"container":"input","blob":"a.mp4"},"output":{"container":"input","blob":"z.mp3"}}`} {
					if r := s.e.record(bodyKey(b)); r.State != records.StateBadRequest {
						t.Errorf("record: got %s, want bad_request", r.State)
					}
				}
				if len(s.e.batch.tasks) != 0 {
					t.Errorf("tasks: got %d, want 0", len(s.e.batch.tasks))
				}
			},
		},
		{
			name:     "empty and oversized inputs: rejected",
			bodies:   []string{body("empty.mp4", ""), body("huge.mp4", "")},
			wantCode: http.StatusOK,
			check: func(t *testing.T, s *setup) {
				for b, want := range map[string]string{"empty.mp4": "empty", "huge.mp4": "too_large"} {
					if r := s.e.record(s.keys[b]); r.State != records.StateRejected || !strings.HasPrefix(r.Reason, want) {
						t.Errorf("%s: got %s %q, want rejected %s", b, r.State, r.Reason, want)
					}
				}
			},
		},
		{
			name:     "unknown preset and unsupported version: bad_request with codes",
			bodies:   []string{body("a.mp4", `,"preset":"nosuch"`), `{"v":2,"source":{"container":"input","blob":"a.mp4"}}`},
			wantCode: http.StatusOK,
			check: func(t *testing.T, s *setup) {
				if r := s.e.record(s.keys["a.mp4"]); r.State != records.StateBadRequest || !strings.HasPrefix(r.Reason, "unknown_preset: ") {
					t.Errorf("unknown preset: got %s %q", r.State, r.Reason)
				}
				if r := s.e.record(bodyKey(`{"v":2,"source":{"container":"input","blob":"a.mp4"}}`)); !strings.HasPrefix(r.Reason, "unsupported_version: ") {
					t.Errorf("v2: got %s %q", r.State, r.Reason)
				}
			},
		},
		{
			name:     "failure record cannot be written: 500",
			prepare:  func(s *setup) { s.e.blobs.fail["put status/"+bodyKey("junk")] = errTransient },
			bodies:   []string{"junk", body("a.mp4", "")},
			wantCode: http.StatusInternalServerError,
		},
		{
			name: "node identity: plain URLs and an identity reference",
			config: func(m map[string]string) {
				m["FFPIPE_NODE_IDENTITY"] = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/pool"
			},
			bodies:   []string{body("a.mp4", "")},
			wantCode: http.StatusOK,
			check: func(t *testing.T, s *setup) {
				spec := s.e.batch.tasks[s.keys["a.mp4"]]
				if spec.NodeIdentity == "" || strings.Contains(spec.InputURL+spec.OutputURLs[0]+spec.StdoutURL+spec.StderrURL, "sig=") {
					t.Errorf("spec: identity %q, urls %s %s %s %s", spec.NodeIdentity, spec.InputURL, spec.OutputURLs[0], spec.StdoutURL, spec.StderrURL)
				}
			},
		},
		{
			name:     "duplicate messages in one batch: one task",
			bodies:   []string{body("a.mp4", ""), body("a.mp4", "")},
			wantCode: http.StatusOK,
			check: func(t *testing.T, s *setup) {
				if len(s.e.batch.tasks) != 1 {
					t.Errorf("tasks: got %d, want 1", len(s.e.batch.tasks))
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &setup{e: newEnv(t, tt.config), keys: map[string]string{}}
			for _, b := range []string{"a.mp4", "b.mp4", "c.mp4"} {
				s.keys[b] = request.Key("ingestacct", "input", b, s.e.blobs.put("input", b, []byte("data"), s.e.now))
			}
			s.keys["empty.mp4"] = request.Key("ingestacct", "input", "empty.mp4", s.e.blobs.put("input", "empty.mp4", nil, s.e.now))
			s.keys["huge.mp4"] = request.Key("ingestacct", "input", "huge.mp4", s.e.blobs.put("input", "huge.mp4", make([]byte, 1000001), s.e.now))
			if tt.prepare != nil {
				tt.prepare(s)
			}
			code, resp := s.e.invoke(FuncDispatch, batchEnvelope(tt.ids, tt.bodies...))
			if code != tt.wantCode {
				t.Fatalf("status: got %d, want %d (logs %v)", code, tt.wantCode, resp.Logs)
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

// metaEnvelope is a Dispatch invocation (cardinality many, dataType
// string) with the given metadata values.
func metaEnvelope(md map[string]json.RawMessage, bodies ...string) []byte {
	arr, _ := json.Marshal(bodies)
	b, _ := json.Marshal(InvokeRequest{Data: map[string]json.RawMessage{BindingMessages: mustJSON(string(arr))}, Metadata: md})
	return b
}

// hostArray encodes a metadata array as the host does: JsonConvert text in
// a JSON string.
func hostArray(jsonText string) json.RawMessage { return mustJSON(jsonText) }

// enqueuedSetting returns the task's EnvEnqueued value, if it has one.
func enqueuedSetting(t *testing.T, spec batch.TaskSpec) (string, bool) {
	t.Helper()
	c, err := spec.Content()
	if err != nil {
		t.Fatalf("task content: %v", err)
	}
	for _, e := range c.EnvironmentSettings {
		if *e.Name == batch.EnvEnqueued {
			return *e.Value, true
		}
	}
	return "", false
}

// TestDispatchEnqueuedTime: the message's enqueued time, in any rendering
// the hosts use, goes on the task as EnvEnqueued; a missing or garbled one
// dispatches the message all the same, without the setting.
func TestDispatchEnqueuedTime(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 12, 33, 123456700, time.UTC)
	tests := []struct {
		name string
		md   map[string]json.RawMessage
		want time.Time // zero: no setting
	}{
		{"host rendering: fraction, no offset", map[string]json.RawMessage{"EnqueuedTimeUtcArray": hostArray(`["2026-03-01T09:12:33.1234567"]`)}, at},
		{"RFC 3339 with Z", map[string]json.RawMessage{"EnqueuedTimeUtcArray": hostArray(`["2026-03-01T09:12:33.1234567Z"]`)}, at},
		{"whole seconds with an offset", map[string]json.RawMessage{"EnqueuedTimeUtcArray": hostArray(`["2026-03-01T11:12:33+02:00"]`)}, at.Truncate(time.Second)},
		{"quoted JSON string", map[string]json.RawMessage{"EnqueuedTimeUtcArray": hostArray(`["\"2026-03-01T09:12:33.1234567Z\""]`)}, at},
		{"array not wrapped in a string", map[string]json.RawMessage{"EnqueuedTimeUtcArray": json.RawMessage(`["2026-03-01T09:12:33.1234567"]`)}, at},
		{"only EnqueuedTimeArray", map[string]json.RawMessage{"EnqueuedTimeArray": hostArray(`["2026-03-01T09:12:33.1234567+00:00"]`)}, at},
		{"garbled Utc, readable EnqueuedTime", map[string]json.RawMessage{
			"EnqueuedTimeUtcArray": hostArray(`["soon"]`), "EnqueuedTimeArray": hostArray(`["2026-03-01T09:12:33.1234567+00:00"]`)}, at},
		{"absent", nil, time.Time{}},
		{"garbled", map[string]json.RawMessage{"EnqueuedTimeUtcArray": hostArray(`["yesterday"]`)}, time.Time{}},
		{"null", map[string]json.RawMessage{"EnqueuedTimeUtcArray": hostArray(`[null]`)}, time.Time{}},
		{"a number", map[string]json.RawMessage{"EnqueuedTimeUtcArray": hostArray(`[1772356353]`)}, time.Time{}},
		{"DateTime.MinValue", map[string]json.RawMessage{"EnqueuedTimeUtcArray": hostArray(`["0001-01-01T00:00:00"]`)}, time.Time{}},
		{"not an array", map[string]json.RawMessage{"EnqueuedTimeUtcArray": hostArray(`["2026-03-01T09:12:33"`)}, time.Time{}},
		{"an object", map[string]json.RawMessage{"EnqueuedTimeUtcArray": json.RawMessage(`{"a":1}`)}, time.Time{}},
		{"empty array", map[string]json.RawMessage{"EnqueuedTimeUtcArray": hostArray(`[]`)}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			key := request.Key("ingestacct", "input", "a.mp4", e.blobs.put("input", "a.mp4", []byte("data"), e.now))
			if code, resp := e.invoke(FuncDispatch, metaEnvelope(tt.md, body("a.mp4", ""))); code != http.StatusOK {
				t.Fatalf("status: got %d, want 200 (logs %v)", code, resp.Logs)
			}
			spec, ok := e.batch.tasks[key]
			if !ok {
				t.Fatalf("no task for %s", key)
			}
			e.noRecord(key)
			if !spec.Enqueued.Equal(tt.want) {
				t.Errorf("enqueued: got %v, want %v", spec.Enqueued, tt.want)
			}
			got, has := enqueuedSetting(t, spec)
			switch {
			case tt.want.IsZero() && has:
				t.Errorf("%s: got %q, want no setting", batch.EnvEnqueued, got)
			case !tt.want.IsZero() && got != tt.want.Format(time.RFC3339Nano):
				t.Errorf("%s: got %q (present %v), want %q", batch.EnvEnqueued, got, has, tt.want.Format(time.RFC3339Nano))
			}
		})
	}
	t.Run("array shorter than the batch", func(t *testing.T) {
		e := newEnv(t, nil)
		keyA := request.Key("ingestacct", "input", "a.mp4", e.blobs.put("input", "a.mp4", []byte("data"), e.now))
		keyB := request.Key("ingestacct", "input", "b.mp4", e.blobs.put("input", "b.mp4", []byte("data"), e.now))
		md := map[string]json.RawMessage{"EnqueuedTimeUtcArray": hostArray(`["2026-03-01T09:12:33.1234567"]`)}
		if code, resp := e.invoke(FuncDispatch, metaEnvelope(md, body("a.mp4", ""), body("b.mp4", ""))); code != http.StatusOK {
			t.Fatalf("status: got %d, want 200 (logs %v)", code, resp.Logs)
		}
		if a, b := e.batch.tasks[keyA], e.batch.tasks[keyB]; !a.Enqueued.Equal(at) || !b.Enqueued.IsZero() || b.Key != keyB {
			t.Errorf("enqueued: got %v and %v (task b %q), want %v and none", a.Enqueued, b.Enqueued, b.Key, at)
		}
	})
}

func TestDispatchJobCache(t *testing.T) {
	e := newEnv(t, nil)
	e.blobs.put("input", "a.mp4", []byte("data"), e.now)
	for range 2 {
		if code, _ := e.invoke(FuncDispatch, batchEnvelope(nil, body("a.mp4", ""))); code != http.StatusOK {
			t.Fatalf("status: got %d, want 200", code)
		}
	}
	if e.batch.ensures != 1 {
		t.Errorf("EnsureJob calls: got %d, want 1 (cached)", e.batch.ensures)
	}
	// The job vanished: 500, and the next batch ensures it again.
	e.batch.addErr = fmt.Errorf("add: %w", batch.ErrJobNotFound)
	if code, _ := e.invoke(FuncDispatch, batchEnvelope(nil, body("a.mp4", ""))); code != http.StatusInternalServerError {
		t.Fatalf("status: got %d, want 500", code)
	}
	e.batch.addErr = nil
	if code, _ := e.invoke(FuncDispatch, batchEnvelope(nil, body("a.mp4", ""))); code != http.StatusOK {
		t.Fatalf("status: got %d, want 200", code)
	}
	if e.batch.ensures != 2 {
		t.Errorf("EnsureJob calls: got %d, want 2", e.batch.ensures)
	}
}

func TestDispatchHundredMessages(t *testing.T) {
	e := newEnv(t, nil)
	var bodies []string
	for i := range 100 {
		name := fmt.Sprintf("v/%03d.mp4", i)
		e.blobs.put("input", name, []byte("data"), e.now)
		bodies = append(bodies, body(name, ""))
	}
	code, _ := e.invoke(FuncDispatch, batchEnvelope(nil, bodies...))
	if code != http.StatusOK || len(e.batch.tasks) != 100 || e.batch.addCalls != 1 {
		t.Errorf("got status %d, %d tasks, %d AddTasks calls; want 200, 100, 1", code, len(e.batch.tasks), e.batch.addCalls)
	}
}

func TestDispatchSingleMessage(t *testing.T) {
	// cardinality one: a double-encoded body string and scalar metadata.
	e := newEnv(t, nil)
	etag := e.blobs.put("input", "a.mp4", []byte("data"), e.now)
	inner, _ := json.Marshal(body("a.mp4", ""))
	b, _ := json.Marshal(InvokeRequest{
		Data: map[string]json.RawMessage{BindingMessages: mustJSON(string(inner))},
		Metadata: map[string]json.RawMessage{"CorrelationId": mustJSON(`"corr-9"`), "MessageId": mustJSON(`"m-9"`),
			// A DateTime: whole seconds, no offset, not double-encoded.
			"EnqueuedTimeUtc": mustJSON("2026-03-01T09:12:33")},
	})
	code, _ := e.invoke(FuncDispatch, b)
	key := request.Key("ingestacct", "input", "a.mp4", etag)
	if code != http.StatusOK || !e.batch.has(key) {
		t.Fatalf("got status %d, task %v; want 200 and a task", code, e.batch.has(key))
	}
	if got := e.batch.tasks[key].Request.CorrelationID; got != "corr-9" {
		t.Errorf("correlation id: got %q, want corr-9", got)
	}
	if got, want := e.batch.tasks[key].Enqueued, time.Date(2026, 3, 1, 9, 12, 33, 0, time.UTC); !got.Equal(want) {
		t.Errorf("enqueued: got %v, want %v", got, want)
	}
}

// TestDispatchRedeliveredAfterSweep: an event or message that comes back
// after Sweep settled the work and deleted the input must not turn the
// done record into input_missing, nor start a task (docs/reliability.md#duplicates-and-reordering).
func TestDispatchRedeliveredAfterSweep(t *testing.T) {
	for _, settled := range []records.State{records.StateDone, records.StateFailed} {
		t.Run(string(settled), func(t *testing.T) {
			e := newEnv(t, nil)
			etag := e.blobs.put("input", "a.mp4", []byte("data"), e.now)
			key := request.Key("ingestacct", "input", "a.mp4", etag)
			if err := e.records.Put(t.Context(), records.Record{Key: key, State: settled,
				Source: records.Blob{Container: "input", Blob: "a.mp4", ETag: etag}}); err != nil {
				t.Fatal(err)
			}
			e.blobs.mu.Lock()
			delete(e.blobs.blobs, "input/a.mp4")
			e.blobs.mu.Unlock()
			msg := fmt.Sprintf(`{"v":1,"source":{"container":"input","blob":"a.mp4","etag":%q}}`, etag)
			if code, resp := e.invoke(FuncDispatch, batchEnvelope(nil, msg)); code != http.StatusOK {
				t.Fatalf("status: got %d, want 200 (logs %v)", code, resp.Logs)
			}
			if r := e.record(key); r.State != settled {
				t.Errorf("record: got %s %q, want %s", r.State, r.Reason, settled)
			}
			if len(e.batch.tasks) != 0 {
				t.Errorf("tasks: got %d, want 0", len(e.batch.tasks))
			}
		})
	}
}
