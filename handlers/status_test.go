package handlers

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/records"
)

func statusEnvelope(url string, params map[string]string, headers map[string][]string) []byte {
	if headers == nil {
		headers = map[string][]string{}
	}
	b, _ := json.Marshal(InvokeRequest{Data: map[string]json.RawMessage{BindingRequest: mustJSON(map[string]any{
		"Url": url, "Method": "GET", "Query": map[string]string{}, "Headers": headers, "Params": params, "Identities": []any{},
	})}, Metadata: map[string]json.RawMessage{}})
	return b
}

func (e *env) status(body []byte) httpResponse {
	e.t.Helper()
	code, resp := e.invoke(FuncStatus, body)
	if code != http.StatusOK {
		e.t.Fatalf("invocation status: got %d, want 200", code)
	}
	raw, err := json.Marshal(resp.Outputs[BindingResponse])
	if err != nil {
		e.t.Fatal(err)
	}
	var hr httpResponse
	if err := json.Unmarshal(raw, &hr); err != nil {
		e.t.Fatalf("output %s: %v", raw, err)
	}
	return hr
}

func TestStatus(t *testing.T) {
	e := newEnv(t, nil)
	key := "0123456789abcdef0123456789abcdef"
	putIndexed(t, e, records.Record{Key: key, State: records.StateFailed, Reason: "task_failed: <script>alert(1)</script>",
		Source: records.Blob{Container: "input", Blob: "<b>evil</b>.mp4"}})
	putIndexed(t, e, records.Record{Key: "00000000000000000000000000000002", State: records.StateDone})
	putIndexed(t, e, records.Record{Key: "00000000000000000000000000000003", State: records.StateDone})

	t.Run("summary as JSON (golden ?format=json)", func(t *testing.T) {
		hr := e.status(golden(t, "http_status.json"))
		if hr.StatusCode != 200 || !strings.HasPrefix(hr.Headers["Content-Type"], "application/json") {
			t.Fatalf("got %d %q", hr.StatusCode, hr.Headers["Content-Type"])
		}
		var sum records.Summary
		if err := json.Unmarshal([]byte(hr.Body), &sum); err != nil {
			t.Fatal(err)
		}
		if sum.Total != 3 || sum.Counts[records.StateDone] != 2 || sum.Counts[records.StateFailed] != 1 || len(sum.Recent) != 3 {
			t.Errorf("summary: got %+v", sum)
		}
	})
	t.Run("summary as HTML, escaped", func(t *testing.T) {
		hr := e.status(statusEnvelope("http://localhost/api/status", map[string]string{}, map[string][]string{"Accept": {"text/html"}}))
		if hr.StatusCode != 200 || !strings.HasPrefix(hr.Headers["Content-Type"], "text/html") {
			t.Fatalf("got %d %q", hr.StatusCode, hr.Headers["Content-Type"])
		}
		if strings.Contains(hr.Body, "<script>") || strings.Contains(hr.Body, "<b>evil") || !strings.Contains(hr.Body, "&lt;b&gt;evil") {
			t.Errorf("HTML not escaped: %s", hr.Body)
		}
		if !strings.Contains(hr.Body, "<td>2</td>") {
			t.Errorf("HTML lacks the done count: %s", hr.Body)
		}
		// No record is stored as dispatched: that column would always say 0.
		if strings.Contains(hr.Body, "<th>dispatched</th>") || !strings.Contains(hr.Body, "Batch tasks") {
			t.Errorf("HTML counts: want stored states and the Batch task counts: %s", hr.Body)
		}
	})
	t.Run("one record by route param, Accept JSON", func(t *testing.T) {
		hr := e.status(statusEnvelope("http://localhost/api/status/"+key, map[string]string{"key": key}, map[string][]string{"Accept": {"application/json"}}))
		var r records.Record
		if err := json.Unmarshal([]byte(hr.Body), &r); err != nil || hr.StatusCode != 200 || r.Key != key || r.State != records.StateFailed {
			t.Errorf("got %d %+v %v", hr.StatusCode, r, err)
		}
	})
	t.Run("one record by path (no Params), HTML", func(t *testing.T) {
		hr := e.status(statusEnvelope("http://localhost/api/status/"+strings.ToUpper(key), nil, nil))
		if hr.StatusCode != 200 || !strings.Contains(hr.Body, key) {
			t.Errorf("got %d %s", hr.StatusCode, hr.Body)
		}
	})
	t.Run("a record's outputs, JSON and HTML", func(t *testing.T) {
		k := "00000000000000000000000000000009"
		outs := []records.OutputInfo{{Name: "hls", Blob: "v/a/hls/master.m3u8", Size: 321},
			{Name: "hls/720p", Blob: "v/a/hls/720p/index.m3u8", Size: 245, Duration: 8, Height: 720}}
		putIndexed(t, e, records.Record{Key: k, State: records.StateDone, Preset: "hls", Outputs: outs})
		hr := e.status(statusEnvelope("http://localhost/api/status/"+k+"?format=json", map[string]string{"key": k}, nil))
		var r records.Record
		if err := json.Unmarshal([]byte(hr.Body), &r); err != nil || len(r.Outputs) != 2 || r.Outputs[1] != outs[1] {
			t.Errorf("JSON outputs: got %+v %v, want %+v", r.Outputs, err, outs)
		}
		hr = e.status(statusEnvelope("http://localhost/api/status/"+k, map[string]string{"key": k}, nil))
		if !strings.Contains(hr.Body, "hls/720p: v/a/hls/720p/index.m3u8 · 245 bytes · 720p · 8.00 s") {
			t.Errorf("HTML lacks the rung: %s", hr.Body)
		}
	})
	t.Run("unknown key: 404", func(t *testing.T) {
		hr := e.status(statusEnvelope("http://localhost/api/status/ffffffffffffffffffffffffffffffff?format=json", map[string]string{"key": "ffffffffffffffffffffffffffffffff"}, nil))
		if hr.StatusCode != 404 {
			t.Errorf("got %d, want 404", hr.StatusCode)
		}
	})
	t.Run("dispatched key: the task is shown as the record", func(t *testing.T) {
		e.batch.tasks["00000000000000000000000000000004"] = batch.TaskSpec{}
		e.batch.created["00000000000000000000000000000004"] = e.now
		e.batch.running["00000000000000000000000000000004"] = e.now.Add(time.Second)
		hr := e.status(statusEnvelope("http://localhost/api/status/00000000000000000000000000000004?format=json", map[string]string{"key": "00000000000000000000000000000004"}, nil))
		var r records.Record
		if err := json.Unmarshal([]byte(hr.Body), &r); err != nil || hr.StatusCode != 200 || r.State != records.StateDispatched ||
			r.Reason != "batch task running" || r.Timings.Dispatched == nil || !r.Timings.Dispatched.Equal(e.now) || r.Timings.Started == nil {
			t.Errorf("got %d %+v %v", hr.StatusCode, r, err)
		}
		if r.Progress != nil {
			t.Errorf("progress before ffmpeg started: got %+v, want none", r.Progress)
		}
		// ffmpeg is a quarter through: percent and ETA from the node.
		e.batch.mu.Lock()
		e.batch.progress = map[string]batch.Progress{"00000000000000000000000000000004": {Percent: 25, DoneSeconds: 30, DurationSeconds: 120, ETA: 90 * time.Second}}
		e.batch.mu.Unlock()
		hr = e.status(statusEnvelope("http://localhost/api/status/00000000000000000000000000000004?format=json", map[string]string{"key": "00000000000000000000000000000004"}, nil))
		r = records.Record{}
		if err := json.Unmarshal([]byte(hr.Body), &r); err != nil || r.Progress == nil || r.Progress.Percent != 25 || r.Progress.ETASeconds != 90 || r.Progress.DurationSeconds != 120 {
			t.Errorf("progress: got %+v (%v), want 25%% with 90 s left", r.Progress, err)
		}
	})
	t.Run("request sent straight to the queue: the task supplies what a record would", func(t *testing.T) {
		e := newEnv(t, nil) // its own tasks: the counts below stay as they are
		f := e.dispatched("direct.mp4")
		enq := e.now.Add(-5 * time.Minute).UTC()
		spec := e.batch.tasks[f.key]
		spec.Enqueued = enq
		e.batch.tasks[f.key] = spec
		hr := e.status(statusEnvelope("http://localhost/api/status/"+f.key+"?format=json", map[string]string{"key": f.key}, nil))
		var r records.Record
		if err := json.Unmarshal([]byte(hr.Body), &r); err != nil || hr.StatusCode != 200 {
			t.Fatalf("got %d %s %v", hr.StatusCode, hr.Body, err)
		}
		if r.State != records.StateDispatched || r.Source.Blob != "direct.mp4" || r.Source.ETag == "" ||
			r.Output.Blob != f.req.Output.Blob || r.Preset != "mp3" || r.CorrelationID != "corr-direct.mp4" ||
			r.Timings.Enqueued == nil || !r.Timings.Enqueued.Equal(enq) {
			t.Errorf("in-flight view of a direct request: %+v", r)
		}
	})
	t.Run("a stored record's own facts win over the task's", func(t *testing.T) {
		e := newEnv(t, nil) // its own tasks: the counts below stay as they are
		f := e.dispatched("recorded.mp4")
		mine := e.now.Add(-time.Hour).UTC()
		spec := e.batch.tasks[f.key]
		spec.Enqueued = e.now.Add(-time.Minute)
		e.batch.tasks[f.key] = spec
		_ = e.records.Put(t.Context(), records.Record{Key: f.key, State: records.StateQueued,
			Source: records.Blob{Container: "input", Blob: "as-recorded.mp4"}, Timings: records.Timings{Enqueued: &mine}})
		hr := e.status(statusEnvelope("http://localhost/api/status/"+f.key+"?format=json", map[string]string{"key": f.key}, nil))
		var r records.Record
		if err := json.Unmarshal([]byte(hr.Body), &r); err != nil || r.Source.Blob != "as-recorded.mp4" ||
			r.Timings.Enqueued == nil || !r.Timings.Enqueued.Equal(mine) {
			t.Errorf("got %d %+v %v", hr.StatusCode, r, err)
		}
	})
	t.Run("queued record with a task: the task's state wins", func(t *testing.T) {
		key := "00000000000000000000000000000005"
		_ = e.records.Put(t.Context(), records.Record{Key: key, State: records.StateQueued, Source: records.Blob{Container: "input", Blob: "q.mp4"}})
		e.batch.tasks[key] = batch.TaskSpec{}
		hr := e.status(statusEnvelope("http://localhost/api/status/"+key+"?format=json", map[string]string{"key": key}, nil))
		var r records.Record
		if err := json.Unmarshal([]byte(hr.Body), &r); err != nil || r.State != records.StateDispatched || r.Reason != "batch task active" || r.Source.Blob != "q.mp4" {
			t.Errorf("got %d %+v %v", hr.StatusCode, r, err)
		}
	})
	t.Run("Batch down: the record as stored", func(t *testing.T) {
		e.batch.taskErr = errTransient
		defer func() { e.batch.taskErr = nil }()
		key := "00000000000000000000000000000005"
		hr := e.status(statusEnvelope("http://localhost/api/status/"+key+"?format=json", map[string]string{"key": key}, nil))
		var r records.Record
		if err := json.Unmarshal([]byte(hr.Body), &r); err != nil || hr.StatusCode != 200 || r.State != records.StateQueued {
			t.Errorf("got %d %+v %v, want the queued record", hr.StatusCode, r, err)
		}
	})
	t.Run("summary has the Batch task counts", func(t *testing.T) {
		hr := e.status(statusEnvelope("http://localhost/api/status?format=json", nil, nil))
		var v struct {
			Total int               `json:"total"`
			Batch *batch.TaskCounts `json:"batch"`
		}
		if err := json.Unmarshal([]byte(hr.Body), &v); err != nil || v.Batch == nil || v.Batch.Active != 1 || v.Batch.Running != 1 {
			t.Errorf("got %s (%v)", hr.Body, err)
		}
		e.batch.taskErr = errTransient
		defer func() { e.batch.taskErr = nil }()
		hr = e.status(statusEnvelope("http://localhost/api/status?format=json", nil, nil))
		if hr.StatusCode != 200 || strings.Contains(hr.Body, `"batch"`) {
			t.Errorf("Batch down: got %d %s, want the records without batch counts", hr.StatusCode, hr.Body)
		}
	})
	t.Run("malformed key: 400", func(t *testing.T) {
		hr := e.status(statusEnvelope("http://localhost/api/status/..%2fetc?format=json", map[string]string{"key": "../etc"}, nil))
		if hr.StatusCode != 400 {
			t.Errorf("got %d, want 400", hr.StatusCode)
		}
	})
	t.Run("storage down: 503 in the output, invocation still succeeds", func(t *testing.T) {
		e.blobs.fail["list"] = errTransient
		defer delete(e.blobs.fail, "list")
		hr := e.status(statusEnvelope("http://localhost/api/status?format=json", nil, nil))
		if hr.StatusCode != 503 {
			t.Errorf("got %d, want 503", hr.StatusCode)
		}
	})
}

// putIndexed writes r as the handlers do (Update), so that the records'
// index counts it; Put is a plain overwrite that the index does not see.
func putIndexed(t *testing.T, e *env, r records.Record) {
	t.Helper()
	if _, err := e.records.Update(t.Context(), r.Key, func(records.Record, bool) records.Record { return r }); err != nil {
		t.Fatal(err)
	}
}
