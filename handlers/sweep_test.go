package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/presets"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
)

// sweepFixture is one dispatched file: input blob, task, and the request
// the task carries.
type sweepFixture struct {
	key  string
	req  request.Request
	etag string
}

func (e *env) dispatched(blob string) sweepFixture {
	etag := e.blobs.put("input", blob, []byte("input-bytes"), e.now.Add(-time.Hour))
	req, err := request.Request{V: 1, Source: request.Source{Container: "input", Blob: blob, ETag: etag, Size: 11}, CorrelationID: "corr-" + blob}.WithDefaults(request.Defaults{
		Account: "ingestacct", Preset: "mp3", OutputContainer: "output", Ext: func(string) (string, bool) { return "mp3", true },
	})
	if err != nil {
		e.t.Fatal(err)
	}
	key := req.Key("ingestacct")
	// As Dispatch leaves it: a task, and no record.
	e.batch.tasks[key] = batch.TaskSpec{Key: key, Request: req}
	e.batch.created[key] = e.now.Add(-3 * time.Minute)
	return sweepFixture{key: key, req: req, etag: etag}
}

func (e *env) complete(f sweepFixture, success bool, exit int, mutate func(*batch.CompletedTask)) {
	ct := batch.CompletedTask{Key: f.key, Request: f.req, Success: success, ExitCode: &exit,
		Created: e.batch.created[f.key], Start: e.now.Add(-2 * time.Minute), End: e.now.Add(-time.Minute)}
	if mutate != nil {
		mutate(&ct)
	}
	e.batch.completed = append(e.batch.completed, ct)
}

func (e *env) sweep() int {
	e.t.Helper()
	code, resp := e.invoke(FuncSweep, golden(e.t, "timer.json"))
	e.t.Logf("sweep: %d %v", code, resp.Logs)
	return code
}

func TestSweepSuccess(t *testing.T) {
	e := newEnv(t, nil)
	f := e.dispatched("v/a.mp4")
	e.blobs.put("output", "v/a.mp3", []byte("mp3-bytes"), e.now)
	e.complete(f, true, 0, nil)
	if code := e.sweep(); code != http.StatusOK {
		t.Fatalf("status: got %d, want 200", code)
	}
	if _, ok := e.blobs.get("input", "v/a.mp4"); ok {
		t.Errorf("input still present after success")
	}
	if e.batch.has(f.key) {
		t.Errorf("task not deleted")
	}
	r := e.record(f.key)
	if r.State != records.StateDone || r.Output.Size != 9 || r.ExitCode == nil || *r.ExitCode != 0 || r.Timings.Swept == nil || r.Timings.Started == nil || r.Timings.Ended == nil || r.CorrelationID != "corr-v/a.mp4" || r.Attempts != 1 {
		t.Errorf("record: got %+v", r)
	}
	// Dispatch writes no record: the dispatch time is the task's creation.
	if want := e.now.Add(-3 * time.Minute); r.Timings.Dispatched == nil || !r.Timings.Dispatched.Equal(want) {
		t.Errorf("dispatched: got %v, want the task's creation time %v", r.Timings.Dispatched, want)
	}
}

func TestSweepFailures(t *testing.T) {
	tests := []struct {
		name          string
		quarantine    string // FFPIPE_QUARANTINE_CONTAINER; "-" = default
		success       bool
		output        []byte // nil = no output blob
		exit          int
		mutate        func(*batch.CompletedTask)
		stderr        string
		wantReason    []string
		wantKeptInput bool
	}{
		{
			name: "ffmpeg failed: reason has exit code, failure info and stderr tail; input quarantined", quarantine: "-",
			exit: 1, mutate: func(ct *batch.CompletedTask) {
				ct.FailureCategory, ct.FailureCode, ct.FailureMessage = "usererror", "FailureExitCode", "The task exited with an exit code representing a failure\nmore"
			},
			stderr:     strings.Repeat("noise\n", 50) + "l1\nl2\nl3\nl4\nmoov atom not found\ninput.mp4: Invalid data found when processing input\n",
			wantReason: []string{"not_media: ", "exit code 1", "usererror FailureExitCode The task exited", "moov atom not found | input.mp4: Invalid data"},
		},
		{
			name: "success without output: no_output", quarantine: "-", success: true,
			wantReason: []string{"no_output"},
		},
		{
			name: "success with an empty output: no_output", quarantine: "-", success: true, output: []byte{},
			wantReason: []string{"no_output"},
		},
		{
			name: "damaged input caught by the task wrapper: decode_error", quarantine: "-", exit: presets.ExitDamagedInput,
			stderr:     "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x1] stream 1, offset 0x31844: partial file\nffpipe: ffmpeg reported errors (damaged input); output discarded\n",
			wantReason: []string{"decode_error: ", "exit code 65", "partial file"},
		},
		{
			name: "video without audio: no_audio", quarantine: "-", exit: 1,
			stderr:     "Stream map '0:a:0' matches no streams.\n",
			wantReason: []string{"no_audio: ", "exit code 1"},
		},
		{
			name: "wall clock exceeded: timeout", quarantine: "-", exit: 137,
			mutate: func(ct *batch.CompletedTask) {
				ct.FailureCategory, ct.FailureCode, ct.FailureMessage = "usererror", "MaxWallClockTimeExpiry", "The task ran longer than allowed"
			},
			wantReason: []string{"timeout: ", "MaxWallClockTimeExpiry"},
		},
		{
			name: "output upload failed: upload_error", quarantine: "-", exit: 0,
			mutate: func(ct *batch.CompletedTask) {
				ct.FailureCategory, ct.FailureCode, ct.FailureMessage = "usererror", "FileUploadError", "upload failed"
			},
			wantReason: []string{"upload_error: "},
		},
		{
			name: "quarantine disabled: input kept", quarantine: "", exit: 183,
			wantReason: []string{"exit code 183"}, wantKeptInput: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(m map[string]string) {
				if tt.quarantine != "-" {
					m["FFPIPE_QUARANTINE_CONTAINER"] = tt.quarantine
				}
			})
			f := e.dispatched("v/a.mp4")
			// Infrastructure failures are retried; at the last allowed
			// dispatch they are recorded like any other failure.
			e.setAttempts(f.key, maxDispatches)
			if tt.output != nil {
				e.blobs.put("output", "v/a.mp3", tt.output, e.now)
			}
			if tt.stderr != "" {
				_, stderr := batch.LogBlobs(f.key)
				e.blobs.put("logs", stderr, []byte(tt.stderr), e.now)
			}
			e.complete(f, tt.success, tt.exit, tt.mutate)
			if code := e.sweep(); code != http.StatusOK {
				t.Fatalf("status: got %d, want 200", code)
			}
			r := e.record(f.key)
			if r.State != records.StateFailed {
				t.Errorf("state: got %s, want failed", r.State)
			}
			for _, w := range tt.wantReason {
				if !strings.Contains(r.Reason, w) {
					t.Errorf("reason %q: want it to contain %q", r.Reason, w)
				}
			}
			if strings.Contains(r.Reason, "noise") {
				t.Errorf("reason %q: want only the last lines of stderr", r.Reason)
			}
			_, inInput := e.blobs.get("input", "v/a.mp4")
			_, inQuarantine := e.blobs.get("quarantine", "v/a.mp4")
			if inInput != tt.wantKeptInput || inQuarantine == tt.wantKeptInput {
				t.Errorf("input in place %v, in quarantine %v; want in place %v", inInput, inQuarantine, tt.wantKeptInput)
			}
			if e.batch.has(f.key) {
				t.Errorf("task not deleted")
			}
		})
	}
}

func (e *env) setAttempts(key string, n int) {
	e.t.Helper()
	if _, err := e.records.Update(e.t.Context(), key, func(r records.Record, _ bool) records.Record {
		r.Attempts = n
		return r
	}); err != nil {
		e.t.Fatal(err)
	}
}

// TestSweepRetriesInfrastructureFailures: a download or upload failure, or
// a success without output, says nothing about the input; Sweep dispatches
// the work again (a fresh message id each time, the task deleted first)
// until maxDispatches, then records the failure.
func TestSweepRetriesInfrastructureFailures(t *testing.T) {
	failures := map[string]func(*batch.CompletedTask){
		"download_error": func(ct *batch.CompletedTask) {
			ct.Success, ct.FailureCategory, ct.FailureCode = false, "usererror", "BlobDownloadMiscError"
		},
		"upload_error": func(ct *batch.CompletedTask) {
			ct.Success, ct.FailureCategory, ct.FailureCode = false, "usererror", "FileUploadError"
		},
		"no_output": func(ct *batch.CompletedTask) { ct.Success = true },
		// The download found no blob, yet the input is there with the same
		// eTag (storage restarting): transient, not a deleted input.
		"input_missing": func(ct *batch.CompletedTask) {
			ct.Success, ct.FailureCategory, ct.FailureCode = false, "usererror", "BlobNotFound"
		},
	}
	for code, mutate := range failures {
		t.Run(code, func(t *testing.T) {
			e := newEnv(t, nil)
			f := e.dispatched("v/a.mp4")
			for dispatch := 1; dispatch <= maxDispatches; dispatch++ {
				// Sweep counts the dispatches itself (Dispatch writes no record).
				e.batch.tasks[f.key] = batch.TaskSpec{Key: f.key, Request: f.req}
				e.batch.completed = nil // this dispatch's task is the only one
				e.complete(f, false, 0, mutate)
				if code := e.sweep(); code != http.StatusOK {
					t.Fatalf("dispatch %d: status %d, want 200", dispatch, code)
				}
				if e.batch.has(f.key) {
					t.Fatalf("dispatch %d: task not deleted", dispatch)
				}
				r := e.record(f.key)
				if dispatch < maxDispatches {
					msgs := e.queue.messages()
					if len(msgs) != dispatch || msgs[dispatch-1].ID != fmt.Sprintf("%s-r%d", f.key, dispatch) {
						t.Fatalf("dispatch %d: messages %d (last id %q), want a retry with id %s-r%d", dispatch, len(msgs), msgs[len(msgs)-1].ID, f.key, dispatch)
					}
					if wantAt := e.now.Add(retryBackoff << (dispatch - 1)); !msgs[dispatch-1].NotBefore.Equal(wantAt) {
						t.Errorf("dispatch %d: retry scheduled at %v, want %v (backoff)", dispatch, msgs[dispatch-1].NotBefore, wantAt)
					}
					got, err := request.Decode(msgs[dispatch-1].Body)
					if err != nil || got.Key("ingestacct") != f.key || got.Output != f.req.Output {
						t.Fatalf("dispatch %d: retry body %+v (%v) does not carry the same request", dispatch, got, err)
					}
					if r.State != records.StateQueued || !strings.Contains(r.Reason, code) || r.Attempts != dispatch+1 {
						t.Errorf("dispatch %d: record %s %q attempts %d, want queued, retrying after %s, attempt %d", dispatch, r.State, r.Reason, r.Attempts, code, dispatch+1)
					}
					if _, ok := e.blobs.get("input", "v/a.mp4"); !ok {
						t.Errorf("dispatch %d: input moved or deleted during a retry", dispatch)
					}
					continue
				}
				if len(e.queue.messages()) != maxDispatches-1 {
					t.Errorf("messages after the last dispatch: got %d, want %d", len(e.queue.messages()), maxDispatches-1)
				}
				if after := fmt.Sprintf("after %d dispatches", maxDispatches); r.State != records.StateFailed || !strings.HasPrefix(r.Reason, code+":") || !strings.Contains(r.Reason, after) {
					t.Errorf("final record %s %q, want failed %s %s", r.State, r.Reason, code, after)
				}
				if _, ok := e.blobs.get("quarantine", "v/a.mp4"); !ok {
					t.Errorf("input not quarantined after the last dispatch")
				}
			}
		})
	}
}

// TestSweepInputGoneIsNotRetried: a download that found no blob because the
// input really is gone ends at once in state input_missing (not failed:
// nothing ran; Dispatch does not check the blob of a complete request).
func TestSweepInputGoneIsNotRetried(t *testing.T) {
	e := newEnv(t, nil)
	f := e.dispatched("v/a.mp4")
	e.blobs.mu.Lock()
	delete(e.blobs.blobs, "input/v/a.mp4")
	e.blobs.mu.Unlock()
	e.complete(f, false, 0, func(ct *batch.CompletedTask) { ct.FailureCategory, ct.FailureCode = "usererror", "BlobNotFound" })
	if code := e.sweep(); code != http.StatusOK {
		t.Fatalf("status %d, want 200", code)
	}
	if r := e.record(f.key); r.State != records.StateInputMissing || !strings.HasPrefix(r.Reason, "input_missing:") {
		t.Errorf("record %s %q, want input_missing", r.State, r.Reason)
	}
	if n := len(e.queue.messages()); n != 0 || e.batch.has(f.key) {
		t.Errorf("messages: got %d, task kept %v; want no retry, the task deleted", n, e.batch.has(f.key))
	}

	// Replaced by a newer upload: the same for this key; the new version
	// stays where it is (it has its own key and task).
	e2 := newEnv(t, nil)
	f2 := e2.dispatched("v/b.mp4")
	e2.blobs.put("input", "v/b.mp4", []byte("version 2"), e2.now)
	e2.complete(f2, false, 0, func(ct *batch.CompletedTask) { ct.FailureCategory, ct.FailureCode = "usererror", "BlobNotFound" })
	if code := e2.sweep(); code != http.StatusOK {
		t.Fatalf("status %d, want 200", code)
	}
	if r := e2.record(f2.key); r.State != records.StateInputMissing {
		t.Errorf("record %s %q, want input_missing", r.State, r.Reason)
	}
	if b, ok := e2.blobs.get("input", "v/b.mp4"); !ok || string(b.data) != "version 2" {
		t.Errorf("new version moved or changed")
	}
}

// TestSweepLogUploadFailureAfterOutput: ffmpeg succeeded and the output was
// written during the run, but Batch failed the task on a log upload: the
// work is done. An output from outside the run's window does not count.
func TestSweepLogUploadFailureAfterOutput(t *testing.T) {
	for _, tc := range []struct {
		name      string
		written   time.Duration // output Last-Modified relative to now; the run spans now-2m … now-1m
		wantState records.State
	}{
		{"output written during the run", -90 * time.Second, records.StateDone},
		{"output from another run", -10 * time.Minute, records.StateQueued},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			f := e.dispatched("v/a.mp4")
			e.blobs.put("output", "v/a.mp3", []byte("mp3-bytes"), e.now.Add(tc.written))
			e.complete(f, false, 0, func(ct *batch.CompletedTask) {
				ct.FailureCategory, ct.FailureCode, ct.FailureMessage = "usererror", "FileUploadError", "upload of stderr.txt failed"
			})
			if code := e.sweep(); code != http.StatusOK {
				t.Fatalf("status %d, want 200", code)
			}
			if r := e.record(f.key); r.State != tc.wantState {
				t.Errorf("record %s %q, want %s", r.State, r.Reason, tc.wantState)
			}
			_, inInput := e.blobs.get("input", "v/a.mp4")
			if inInput == (tc.wantState == records.StateDone) {
				t.Errorf("input present %v; want it deleted only when done", inInput)
			}
		})
	}
}

func TestSweepInputReplacedIsKept(t *testing.T) {
	e := newEnv(t, nil)
	f := e.dispatched("a.mp4")
	e.blobs.put("output", "a.mp3", []byte("mp3"), e.now)
	newETag := e.blobs.put("input", "a.mp4", []byte("a newer upload"), e.now) // same name, new version
	e.complete(f, true, 0, nil)
	if code := e.sweep(); code != http.StatusOK {
		t.Fatalf("status: got %d, want 200", code)
	}
	b, ok := e.blobs.get("input", "a.mp4")
	if !ok || b.etag != newETag {
		t.Errorf("newer upload deleted (If-Match ignored)")
	}
	if r := e.record(f.key); r.State != records.StateDone {
		t.Errorf("state: got %s, want done", r.State)
	}
}

// A crash (here: a failing step) between any two steps is repaired by the
// next run.
func TestSweepIdempotentAcrossCrashes(t *testing.T) {
	steps := []struct {
		name      string
		breakStep func(e *env, f sweepFixture)
		fix       func(e *env)
	}{
		{"before the result file read", func(e *env, f sweepFixture) { e.blobs.fail["tail logs/"+batch.ResultBlob(f.key)] = errTransient }, func(e *env) { e.blobs.fail = map[string]error{} }},
		{"before the output check", func(e *env, f sweepFixture) { e.blobs.fail["props output/a.mp3"] = errTransient }, func(e *env) { e.blobs.fail = map[string]error{} }},
		{"before the input delete", func(e *env, f sweepFixture) { e.blobs.fail["delete input/a.mp4"] = errTransient }, func(e *env) { delete(e.blobs.fail, "delete input/a.mp4") }},
		{"after the input delete, before the record", func(e *env, f sweepFixture) { e.blobs.fail["put status/"+f.key] = errTransient }, func(e *env) { e.blobs.fail = map[string]error{} }},
		{"after the record, before the task delete", func(e *env, f sweepFixture) { e.batch.deleteErr = errTransient }, func(e *env) { e.batch.deleteErr = nil }},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			e := newEnv(t, nil)
			f := e.dispatched("a.mp4")
			e.blobs.put("output", "a.mp3", []byte("mp3"), e.now)
			e.blobs.put("logs", batch.ResultBlob(f.key), []byte(okResult), e.now)
			e.complete(f, true, 0, nil)
			st.breakStep(e, f)
			if code := e.sweep(); code != http.StatusInternalServerError {
				t.Fatalf("first run: got %d, want 500", code)
			}
			st.fix(e)
			if code := e.sweep(); code != http.StatusOK {
				t.Fatalf("second run: got %d, want 200", code)
			}
			if r := e.record(f.key); r.State != records.StateDone {
				t.Errorf("state: got %s, want done", r.State)
			}
			if _, ok := e.blobs.get("input", "a.mp4"); ok || e.batch.has(f.key) {
				t.Errorf("input present %v, task present %v; want neither", ok, e.batch.has(f.key))
			}
			if _, ok := e.blobs.get("output", "a.mp3"); !ok {
				t.Errorf("output deleted")
			}
			// A third run has nothing to do and changes nothing.
			if code := e.sweep(); code != http.StatusOK {
				t.Fatalf("third run: got %d, want 200", code)
			}
		})
	}
}

// okResult is the wrapper's result file of a one-output success.
const okResult = "ffpipe-result 1\nsource audio=1 video=0 height=0 duration=1\noutput 0 duration=1\nok\n"

// TestSweepCallsPerFile: settling a successful one-output file makes one
// storage call for each thing settled means, and no more: the result file
// (one read), the output's properties, the input's If-Match delete, the
// record's read and conditional write (docs/performance.md, Sweep).
func TestSweepCallsPerFile(t *testing.T) {
	e := newEnv(t, nil)
	f := e.dispatched("a.mp4")
	e.blobs.put("output", "a.mp3", []byte("mp3"), e.now)
	e.blobs.put("logs", batch.ResultBlob(f.key), []byte(okResult), e.now)
	e.complete(f, true, 0, nil)
	e.blobs.mu.Lock()
	e.blobs.ops = nil
	e.blobs.mu.Unlock()
	if code := e.sweep(); code != http.StatusOK {
		t.Fatalf("sweep: got %d, want 200", code)
	}
	e.blobs.mu.Lock()
	var got []string
	for _, op := range e.blobs.ops {
		// The records index and the reconcile listing are not per file.
		if !strings.HasPrefix(op, "list ") && !strings.Contains(op, "/days/") && !strings.HasPrefix(op, "get index/") && !strings.HasPrefix(op, "put index/") {
			got = append(got, op)
		}
	}
	e.blobs.mu.Unlock()
	want := []string{
		"tail logs/" + batch.ResultBlob(f.key),
		"props output/a.mp3",
		"delete input/a.mp4",
		"get status/" + f.key,
		"put status/" + f.key,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("storage calls:\ngot  %q\nwant %q", got, want)
	}
	if r := e.record(f.key); r.State != records.StateDone || len(r.Outputs) != 1 || r.Outputs[0].Duration != 1 {
		t.Errorf("record: got %s %+v, want done with the result's duration", r.State, r.Outputs)
	}
}

func TestSweepUnreadableTask(t *testing.T) {
	e := newEnv(t, nil)
	f := e.dispatched("a.mp4")
	// The queued record OnBlobCreated wrote supplies source and eTag.
	if _, err := e.records.Update(t.Context(), f.key, func(r records.Record, _ bool) records.Record {
		r = recordFrom(r, f.req)
		r.State = records.StateQueued
		return r
	}); err != nil {
		t.Fatal(err)
	}
	e.complete(f, false, 1, func(ct *batch.CompletedTask) {
		ct.Request, ct.RequestErr = request.Request{}, fmt.Errorf("no FFPIPE_REQUEST")
	})
	if code := e.sweep(); code != http.StatusOK {
		t.Fatalf("status: got %d, want 200", code)
	}
	if _, ok := e.blobs.get("quarantine", "a.mp4"); !ok {
		t.Errorf("input not quarantined via the record's facts")
	}
	if r := e.record(f.key); r.State != records.StateFailed {
		t.Errorf("state: got %s, want failed", r.State)
	}

	// With no record either: failed as unknown_task, task deleted.
	e2 := newEnv(t, nil)
	key := "0123456789abcdef0123456789abcdef"
	e2.batch.tasks[key] = batch.TaskSpec{Key: key}
	e2.batch.completed = []batch.CompletedTask{{Key: key, RequestErr: fmt.Errorf("garbled")}}
	if code := e2.sweep(); code != http.StatusOK {
		t.Fatalf("status: got %d, want 200", code)
	}
	if r := e2.record(key); r.State != records.StateFailed || !strings.HasPrefix(r.Reason, "unknown_task") || e2.batch.has(key) {
		t.Errorf("got %s %q, task %v", r.State, r.Reason, e2.batch.has(key))
	}
}

func TestSweepListErrors(t *testing.T) {
	e := newEnv(t, nil)
	e.batch.listErr = fmt.Errorf("list: %w", batch.ErrJobNotFound)
	if code := e.sweep(); code != http.StatusOK {
		t.Errorf("job not found yet: got %d, want 200", code)
	}
	e.batch.listErr = errTransient
	if code := e.sweep(); code != http.StatusInternalServerError {
		t.Errorf("list failed: got %d, want 500", code)
	}
}

// TestSweepRounds: a run lists again while rounds come back full, so a
// timer that fires once a minute is not limited to FFPIPE_SWEEP_MAX_TASKS a
// minute; the budget and a round's error end the run.
func TestSweepRounds(t *testing.T) {
	fill := func(e *env, n int) {
		for i := range n {
			f := e.dispatched(fmt.Sprintf("%03d.mp4", i))
			e.blobs.put("output", fmt.Sprintf("%03d.mp3", i), []byte("mp3"), e.now)
			e.complete(f, true, 0, nil)
		}
	}
	t.Run("rounds until a short one", func(t *testing.T) {
		e := newEnv(t, nil) // FFPIPE_SWEEP_MAX_TASKS=50
		fill(e, 120)
		if code := e.sweep(); code != http.StatusOK {
			t.Fatalf("status: got %d, want 200", code)
		}
		if got := len(e.batch.deleted); got != 120 {
			t.Errorf("tasks settled in one run: got %d, want 120", got)
		}
		if e.batch.lists != 3 {
			t.Errorf("listings: got %d, want 3 (50, 50, 20)", e.batch.lists)
		}
	})
	t.Run("an exact multiple lists once more and finds nothing", func(t *testing.T) {
		e := newEnv(t, nil)
		fill(e, 100)
		e.sweep()
		if got, lists := len(e.batch.deleted), e.batch.lists; got != 100 || lists != 3 {
			t.Errorf("settled %d in %d listings, want 100 in 3", got, lists)
		}
	})
	t.Run("the budget ends the run", func(t *testing.T) {
		e := newEnv(t, func(m map[string]string) { m["FFPIPE_SWEEP_BUDGET"] = "30s" })
		fill(e, 120)
		// The second listing comes 31 s into the run: its round is
		// settled, then the run ends.
		first := true
		e.batch.onList = func() {
			if !first {
				e.now = e.now.Add(31 * time.Second)
			}
			first = false
		}
		e.sweep()
		if got := len(e.batch.deleted); got != 100 {
			t.Errorf("settled in one run: got %d, want 100 (the round that began inside 30 s, and no third)", got)
		}
		e.batch.onList = nil
		e.sweep()
		if got := len(e.batch.deleted); got != 120 {
			t.Errorf("settled after the next run: got %d, want 120", got)
		}
	})
	t.Run("a round with an error ends the run", func(t *testing.T) {
		e := newEnv(t, nil)
		fill(e, 120)
		e.batch.deleteErr = errTransient
		if code := e.sweep(); code != http.StatusInternalServerError {
			t.Errorf("status: got %d, want 500", code)
		}
		if e.batch.lists != 1 {
			t.Errorf("listings: got %d, want 1: a failing round must not be listed again in the same run", e.batch.lists)
		}
		e.batch.deleteErr = nil
		e.sweep()
		if got := len(e.batch.deleted); got != 120 {
			t.Errorf("settled after the errors cleared: got %d, want 120", got)
		}
	})
}

func TestReconcile(t *testing.T) {
	e := newEnv(t, nil) // FFPIPE_RECONCILE_AFTER=15m
	old := e.now.Add(-time.Hour)
	orphan := e.blobs.put("input", "orphan.mp4", []byte("x"), old)
	withTask := e.dispatched("with-task.mp4") // task + dispatched record
	doneETag := e.blobs.put("input", "done.mp4", []byte("x"), old)
	doneKey := request.Key("ingestacct", "input", "done.mp4", doneETag)
	_ = e.records.Put(t.Context(), records.Record{Key: doneKey, State: records.StateFailed})
	staleETag := e.blobs.put("input", "stale.mp4", []byte("x"), old)
	staleKey := request.Key("ingestacct", "input", "stale.mp4", staleETag)
	e.now = e.now.Add(-time.Hour) // the queued record is an hour old
	_ = e.records.Put(t.Context(), records.Record{Key: staleKey, State: records.StateQueued})
	e.now = e.now.Add(time.Hour)
	recentETag := e.blobs.put("input", "recent.mp4", []byte("x"), e.now.Add(-time.Minute))
	e.blobs.put("input", "notes.txt", []byte("x"), old)

	if code := e.sweep(); code != http.StatusOK {
		t.Fatalf("status: got %d, want 200", code)
	}
	got := map[string]bool{}
	for _, m := range e.queue.messages() {
		got[m.ID] = true
	}
	want := map[string]bool{
		request.Key("ingestacct", "input", "orphan.mp4", orphan): true,
		staleKey: true,
	}
	for k := range want {
		if !got[k] {
			t.Errorf("key %s not re-enqueued", k)
		}
	}
	for name, k := range map[string]string{"with task": withTask.key, "finished": doneKey, "recent": request.Key("ingestacct", "input", "recent.mp4", recentETag)} {
		if got[k] {
			t.Errorf("%s input re-enqueued", name)
		}
	}
	if len(got) != len(want) {
		t.Errorf("messages: got %d, want %d", len(got), len(want))
	}
	if r := e.record(request.Key("ingestacct", "input", "orphan.mp4", orphan)); r.State != records.StateQueued {
		t.Errorf("orphan record: got %s, want queued", r.State)
	}
	// The next run does not send again: the record is fresh.
	e.sweep()
	if n := len(e.queue.messages()); n != 2 {
		t.Errorf("messages after a second run: got %d, want 2", n)
	}
}

// FuzzClassify: whatever stderr and Batch failure info a task brings back,
// Sweep's classification never panics and yields a known code, and the
// stderr excerpt stays within the lines asked for.
func FuzzClassify(f *testing.F) {
	f.Add("[mov,mp4,m4a,3gp,3g2,mj2 @ 0x1] moov atom not found\ninput.mp4: Invalid data found when processing input\n", "FailureExitCode", 1)
	f.Add("Stream map '0:a:0' matches no streams.\n", "", 1)
	f.Add("partial file\n", "", presets.ExitDamagedInput)
	f.Add("", "FileUploadError", 0)
	f.Add("\x00\xff\n\n\r\n", "MaxWallClockTimeExpiry", -1)
	f.Fuzz(func(t *testing.T, stderr, batchCode string, exit int) {
		ct := batch.CompletedTask{FailureCode: batchCode, ExitCode: &exit}
		if code := classify(ct, stderr); !code.Known() {
			t.Fatalf("classify = %q, not a known code", code)
		}
		if got := lastLines(stderr, stderrTailLines); strings.Count(got, " | ") >= stderrTailLines {
			t.Fatalf("lastLines kept more than %d lines: %q", stderrTailLines, got)
		}
	})
}

// A second run of finished work (a request sent again after Sweep settled
// the first; Dispatch reads no records) fails for want of its input: the
// first verdict stays, the input is not touched, the task goes. The same
// run settled again after a crash goes the whole way.
func TestSweepSecondRunOfFinishedWork(t *testing.T) {
	notFound := func(ct *batch.CompletedTask) {
		ct.ExitCode, ct.FailureCategory, ct.FailureCode = nil, "usererror", "BlobNotFound"
	}
	for _, st := range []records.State{records.StateDone, records.StateFailed} {
		t.Run(string(st), func(t *testing.T) {
			e := newEnv(t, nil)
			f := e.dispatched("a.mp4")
			first := e.now.Add(-time.Hour)
			_ = e.records.Put(t.Context(), records.Record{Key: f.key, State: st, Reason: "first run", Timings: records.Timings{Ended: &first}})
			e.complete(f, false, 0, notFound)
			if code := e.sweep(); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			if r := e.record(f.key); r.State != st || r.Reason != "first run" {
				t.Errorf("record: got %s %q, want the first verdict", r.State, r.Reason)
			}
			if e.batch.has(f.key) || len(e.queue.messages()) != 0 {
				t.Errorf("task kept %v, %d retries; want it deleted, no retry", e.batch.has(f.key), len(e.queue.messages()))
			}
			if _, ok := e.blobs.get("input", "a.mp4"); !ok {
				t.Errorf("input moved")
			}
		})
	}
	t.Run("same run settled again", func(t *testing.T) {
		e := newEnv(t, nil)
		f := e.dispatched("a.mp4")
		e.complete(f, false, 1, nil)
		end := e.batch.completed[0].End
		_ = e.records.Put(t.Context(), records.Record{Key: f.key, State: records.StateFailed, Reason: "task_failed: x", Timings: records.Timings{Ended: &end}})
		if code := e.sweep(); code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		if _, ok := e.blobs.get("quarantine", "a.mp4"); !ok || e.batch.has(f.key) {
			t.Errorf("quarantined %v, task kept %v; want the settlement finished", ok, e.batch.has(f.key))
		}
	})
}

// completedFrom is the completed task the Batch client reports for a task
// Dispatch added: request and enqueued time read back from the task's
// environment settings, as batch.Client.ListCompleted decodes them.
func (e *env) completedFrom(spec batch.TaskSpec, mutate func(*batch.CompletedTask)) {
	e.t.Helper()
	c, err := spec.Content()
	if err != nil {
		e.t.Fatalf("task content: %v", err)
	}
	exit := 0
	ct := batch.CompletedTask{Key: spec.Key, Success: true, ExitCode: &exit,
		Created: e.batch.created[spec.Key], Start: e.now.Add(-2 * time.Minute), End: e.now.Add(-time.Minute)}
	for _, s := range c.EnvironmentSettings {
		switch *s.Name {
		case batch.EnvRequest:
			ct.Request, ct.RequestErr = batch.DecodeRequestEnv(*s.Value)
		case batch.EnvEnqueued:
			ct.Enqueued = batch.ParseEnqueuedEnv(*s.Value)
		}
	}
	if mutate != nil {
		mutate(&ct)
	}
	e.batch.completed = append(e.batch.completed, ct)
}

// dispatchWithEnqueued runs Dispatch for one request sent straight to the
// queue, with the host's EnqueuedTimeUtcArray value enq, and returns the task.
func (e *env) dispatchWithEnqueued(blob, enq string) batch.TaskSpec {
	e.t.Helper()
	md := map[string]json.RawMessage{"EnqueuedTimeUtcArray": mustJSON(`["` + enq + `"]`)}
	if code, resp := e.invoke(FuncDispatch, metaEnvelope(md, body(blob, ""))); code != http.StatusOK {
		e.t.Fatalf("dispatch: got %d, want 200 (logs %v)", code, resp.Logs)
	}
	if len(e.batch.tasks) != 1 {
		e.t.Fatalf("tasks: got %d, want 1", len(e.batch.tasks))
	}
	for _, s := range e.batch.tasks {
		return s
	}
	return batch.TaskSpec{}
}

// TestSweepEnqueuedTime: a request sent straight to the queue has no
// queued record; its final record takes timings.enqueued from the task
// (the message's enqueued time), and a time already recorded stays.
func TestSweepEnqueuedTime(t *testing.T) {
	msgTime := time.Date(2026, 3, 1, 9, 12, 33, 123456700, time.UTC)
	blobTime := time.Date(2026, 3, 1, 9, 12, 30, 0, time.UTC) // OnBlobCreated's send
	tests := []struct {
		name  string
		enq   string     // the host's EnqueuedTimeUtcArray element
		prior *time.Time // a record's Enqueued before Dispatch (OnBlobCreated's queued record)
		want  *time.Time // final timings.enqueued
	}{
		{name: "direct request: the message's enqueued time", enq: "2026-03-01T09:12:33.1234567", want: &msgTime},
		{name: "OnBlobCreated's time wins", enq: "2026-03-01T09:12:33.1234567", prior: &blobTime, want: &blobTime},
		{name: "garbled metadata: no enqueued time", enq: "not a time", want: nil},
		{name: "garbled metadata, OnBlobCreated's time kept", enq: "not a time", prior: &blobTime, want: &blobTime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			etag := e.blobs.put("input", "v/a.mp4", []byte("input-bytes"), e.now.Add(-time.Hour))
			key := request.Key("ingestacct", "input", "v/a.mp4", etag)
			if tt.prior != nil {
				if err := e.records.Put(t.Context(), records.Record{Key: key, State: records.StateQueued,
					Source: records.Blob{Container: "input", Blob: "v/a.mp4", ETag: etag}, Timings: records.Timings{Enqueued: tt.prior}}); err != nil {
					t.Fatal(err)
				}
			}
			spec := e.dispatchWithEnqueued("v/a.mp4", tt.enq)
			e.blobs.put("output", "v/a.mp3", []byte("mp3-bytes"), e.now)
			e.completedFrom(spec, nil)
			if code := e.sweep(); code != http.StatusOK {
				t.Fatalf("sweep: got %d, want 200", code)
			}
			r := e.record(key)
			if r.State != records.StateDone {
				t.Fatalf("record: got %s %q, want done", r.State, r.Reason)
			}
			switch got := r.Timings.Enqueued; {
			case tt.want == nil && got != nil:
				t.Errorf("enqueued: got %v, want none", *got)
			case tt.want != nil && (got == nil || !got.Equal(*tt.want)):
				t.Errorf("enqueued: got %v, want %v", got, *tt.want)
			}
			// The other timings are as before.
			if r.Timings.Dispatched == nil || !r.Timings.Dispatched.Equal(e.batch.created[key]) || r.Timings.Started == nil || r.Timings.Ended == nil || r.Timings.Swept == nil {
				t.Errorf("timings: got %+v", r.Timings)
			}
		})
	}
}

// TestSweepRetryKeepsFirstEnqueued: a retry is a new message with its own
// enqueued time; the record keeps the first request's.
func TestSweepRetryKeepsFirstEnqueued(t *testing.T) {
	e := newEnv(t, nil)
	first := time.Date(2026, 3, 1, 9, 12, 33, 123456700, time.UTC)
	e.blobs.put("input", "v/a.mp4", []byte("input-bytes"), e.now.Add(-time.Hour))
	spec := e.dispatchWithEnqueued("v/a.mp4", "2026-03-01T09:12:33.1234567")
	e.completedFrom(spec, func(ct *batch.CompletedTask) {
		ct.Success, ct.FailureCategory, ct.FailureCode = false, "usererror", "BlobDownloadMiscError"
	})
	if code := e.sweep(); code != http.StatusOK {
		t.Fatalf("sweep: got %d, want 200", code)
	}
	if r := e.record(spec.Key); r.State != records.StateQueued || r.Timings.Enqueued == nil || !r.Timings.Enqueued.Equal(first) {
		t.Fatalf("retry record: got %s, enqueued %v; want queued, %v", r.State, r.Timings.Enqueued, first)
	}
	// The retry's message, enqueued later, is dispatched and succeeds.
	e.batch.completed = nil
	e.now = e.now.Add(time.Minute)
	again := e.dispatchWithEnqueued("v/a.mp4", "2026-03-01T10:00:15")
	if !again.Enqueued.Equal(time.Date(2026, 3, 1, 10, 0, 15, 0, time.UTC)) {
		t.Fatalf("retry task enqueued: got %v", again.Enqueued)
	}
	e.blobs.put("output", "v/a.mp3", []byte("mp3-bytes"), e.now)
	e.completedFrom(again, nil)
	if code := e.sweep(); code != http.StatusOK {
		t.Fatalf("sweep: got %d, want 200", code)
	}
	if r := e.record(spec.Key); r.State != records.StateDone || r.Timings.Enqueued == nil || !r.Timings.Enqueued.Equal(first) {
		t.Errorf("final record: got %s, enqueued %v; want done, %v", r.State, r.Timings.Enqueued, first)
	}
}

// TestReconcileThrottled: reconcile lists the inputs at most once per
// quarter of FFPIPE_RECONCILE_AFTER, and again at the next run after a
// failed listing.
func TestReconcileThrottled(t *testing.T) {
	e := newEnv(t, nil) // FFPIPE_RECONCILE_AFTER=15m
	lists := func() int {
		e.blobs.mu.Lock()
		defer e.blobs.mu.Unlock()
		n := 0
		for _, op := range e.blobs.ops {
			if op == "list input/" {
				n++
			}
		}
		return n
	}
	sweep := func(want int, why string) {
		t.Helper()
		if code := e.sweep(); code != http.StatusOK && code != http.StatusInternalServerError {
			t.Fatalf("%s: status %d", why, code)
		}
		if got := lists(); got != want {
			t.Errorf("%s: %d listings of the inputs, want %d", why, got, want)
		}
	}
	sweep(1, "first run")
	e.now = e.now.Add(time.Second)
	sweep(1, "a second later")
	e.now = e.now.Add(3*time.Minute + 43*time.Second)
	sweep(1, "just under a quarter of 15m later")
	e.now = e.now.Add(time.Second)
	sweep(2, "a quarter of 15m after the first")

	e.now = e.now.Add(4 * time.Minute)
	e.blobs.mu.Lock()
	e.blobs.fail["list input/"] = errTransient
	e.blobs.mu.Unlock()
	if code := e.sweep(); code == http.StatusOK {
		t.Errorf("failed listing: status %d, want an error", code)
	}
	e.blobs.mu.Lock()
	delete(e.blobs.fail, "list input/")
	e.blobs.mu.Unlock()
	e.now = e.now.Add(time.Second)
	sweep(4, "the run after a failed listing")
}

// TestSweepQuietWhenIdle: a run that found nothing writes nothing to the
// host's log (the timer fires every few seconds locally); a run that
// settled a task says so.
func TestSweepQuietWhenIdle(t *testing.T) {
	e := newEnv(t, nil)
	e.sweep() // the first run reconciles
	code, resp := e.invoke(FuncSweep, golden(t, "timer.json"))
	if code != http.StatusOK || len(resp.Logs) != 0 {
		t.Errorf("idle run: got %d %q, want 200 and no log lines", code, resp.Logs)
	}
	f := e.dispatched("v/a.mp4")
	e.blobs.put("output", "v/a.mp3", []byte("mp3-bytes"), e.now)
	e.complete(f, true, 0, nil)
	code, resp = e.invoke(FuncSweep, golden(t, "timer.json"))
	if want := "sweep: 1 completed tasks (1 done, 0 failed)"; code != http.StatusOK || !strings.Contains(strings.Join(resp.Logs, "\n"), want) {
		t.Errorf("busy run: got %d %q, want 200 and a line with %q", code, resp.Logs, want)
	}
}
