package handlers

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
)

// TestSweepEveryOutput: a successful task is done, and its input deleted,
// only when every output blob it should have written exists and is not
// empty (HLS: the master and every rung playlist its result file lists);
// otherwise it is no_output, dispatched again, and the input stays.
func TestSweepEveryOutput(t *testing.T) {
	web := []request.OutputBlob{{Name: "mp4-720", Blob: "v/a.mp4"}, {Name: "thumbnail", Blob: "v/a.jpg"}}
	hls := []request.OutputBlob{{Name: "hls", Blob: "v/a/hls/master.m3u8", Folder: "v/a/hls"}}
	podcast := []request.OutputBlob{{Name: "mp3", Blob: "v/a.mp3"}, {Name: "opus", Blob: "v/a.opus"}, {Name: "thumbnail", Blob: "v/a.jpg"}}
	webOK := "ffpipe-result 1\nsource audio=1 video=1 height=720 duration=4\noutput 0 duration=4.02 height=720\noutput 1 height=180\nok\n"
	hlsOK := "ffpipe-result 1\nsource audio=1 video=1 height=720 duration=8\noutput 0 rung=360 duration=8 height=360\noutput 0 rung=540 duration=8 height=540\noutput 0 rung=720 duration=8 height=720\nok\n"
	tests := []struct {
		name    string
		outputs []request.OutputBlob
		result  string
		blobs   []string // output blobs present (non-empty)
		empty   []string // output blobs present but empty
		done    bool
		want    []records.OutputInfo // on done
		missing string               // in the reason otherwise
	}{
		{name: "web: both outputs", outputs: web, result: webOK, blobs: []string{"v/a.mp4", "v/a.jpg"}, done: true,
			want: []records.OutputInfo{{Name: "mp4-720", Blob: "v/a.mp4", Size: 4, Duration: 4.02, Height: 720}, {Name: "thumbnail", Blob: "v/a.jpg", Size: 4, Height: 180}}},
		{name: "web: thumbnail missing", outputs: web, result: webOK, blobs: []string{"v/a.mp4"}, missing: "output thumbnail (v/a.jpg)"},
		{name: "web: video empty", outputs: web, result: webOK, blobs: []string{"v/a.jpg"}, empty: []string{"v/a.mp4"}, missing: "output mp4-720 (v/a.mp4)"},
		{name: "hls: master and every rung", outputs: hls, result: hlsOK, done: true,
			blobs: []string{"v/a/hls/master.m3u8", "v/a/hls/360p/index.m3u8", "v/a/hls/540p/index.m3u8", "v/a/hls/720p/index.m3u8"},
			want: []records.OutputInfo{{Name: "hls", Blob: "v/a/hls/master.m3u8", Size: 4},
				{Name: "hls/360p", Blob: "v/a/hls/360p/index.m3u8", Size: 4, Duration: 8, Height: 360},
				{Name: "hls/540p", Blob: "v/a/hls/540p/index.m3u8", Size: 4, Duration: 8, Height: 540},
				{Name: "hls/720p", Blob: "v/a/hls/720p/index.m3u8", Size: 4, Duration: 8, Height: 720}}},
		{name: "hls: a rung playlist missing", outputs: hls, result: hlsOK,
			blobs: []string{"v/a/hls/master.m3u8", "v/a/hls/360p/index.m3u8", "v/a/hls/720p/index.m3u8"}, missing: "v/a/hls/540p/index.m3u8"},
		{name: "hls: master missing", outputs: hls, result: hlsOK,
			blobs: []string{"v/a/hls/360p/index.m3u8", "v/a/hls/540p/index.m3u8", "v/a/hls/720p/index.m3u8"}, missing: "master.m3u8"},
		{name: "hls: no result file says which rungs", outputs: hls, blobs: []string{"v/a/hls/master.m3u8"}, missing: "lists no rung"},
		{name: "podcast of an audio-only file: the optional thumbnail skipped", outputs: podcast, done: true,
			result: "ffpipe-result 1\nsource audio=1 video=0 height=0 duration=3\noutput 0 duration=3.05\noutput 1 duration=3.02\noutput 2 skipped\nok\n",
			blobs:  []string{"v/a.mp3", "v/a.opus"},
			want:   []records.OutputInfo{{Name: "mp3", Blob: "v/a.mp3", Size: 4, Duration: 3.05}, {Name: "opus", Blob: "v/a.opus", Size: 4, Duration: 3.02}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			f := e.dispatched("v/a.mp4")
			f.req.Output.Blob = tt.outputs[0].Blob
			for _, b := range tt.blobs {
				e.blobs.put("output", b, []byte("data"), e.now)
			}
			for _, b := range tt.empty {
				e.blobs.put("output", b, nil, e.now)
			}
			if tt.result != "" {
				e.blobs.put("logs", batch.ResultBlob(f.key), []byte(tt.result), e.now)
			}
			e.complete(f, true, 0, func(ct *batch.CompletedTask) { ct.Outputs = tt.outputs })
			if code := e.sweep(); code != http.StatusOK {
				t.Fatalf("status: got %d, want 200", code)
			}
			r := e.record(f.key)
			_, inputKept := e.blobs.get("input", "v/a.mp4")
			if tt.done {
				if r.State != records.StateDone || inputKept || len(r.Outputs) != len(tt.want) {
					t.Fatalf("record %s %q outputs %+v, input kept %v; want done with %+v and the input deleted", r.State, r.Reason, r.Outputs, inputKept, tt.want)
				}
				for i := range tt.want {
					if r.Outputs[i] != tt.want[i] {
						t.Errorf("output %d: got %+v, want %+v", i, r.Outputs[i], tt.want[i])
					}
				}
				return
			}
			if r.State != records.StateQueued || !strings.Contains(r.Reason, "no_output") || !strings.Contains(r.Reason, tt.missing) || !inputKept {
				t.Errorf("record %s %q, input kept %v; want queued for a retry after no_output naming %q, the input kept", r.State, r.Reason, inputKept, tt.missing)
			}
			if msgs := e.queue.messages(); len(msgs) != 1 {
				t.Errorf("retry messages: got %d, want 1", len(msgs))
			}
		})
	}
}

// TestSweepDeterministicFailureRunsOnce: a task whose wrapper reported a
// deterministic failure (exit 0, a failed result) is recorded failed with
// the wrapper's code after that one run: no new dispatch, the input
// quarantined, the stderr tail in the reason.
func TestSweepDeterministicFailureRunsOnce(t *testing.T) {
	for _, code := range []string{"no_video", "no_audio", "not_media", "decode_error", "verify_failed", "no_rung"} {
		t.Run(code, func(t *testing.T) {
			e := newEnv(t, nil)
			f := e.dispatched("v/a.mp4")
			e.blobs.put("logs", batch.ResultBlob(f.key), []byte("ffpipe-result 1\nfailed "+code+" the input cannot give this output\n"), e.now)
			_, stderr := batch.LogBlobs(f.key)
			e.blobs.put("logs", stderr, []byte("ffpipe: "+code+": the input cannot give this output\n"), e.now)
			e.complete(f, true, 0, nil)
			if status := e.sweep(); status != http.StatusOK {
				t.Fatalf("status: got %d, want 200", status)
			}
			r := e.record(f.key)
			if r.State != records.StateFailed || !strings.HasPrefix(r.Reason, code+": the input cannot give this output; stderr: ffpipe: ") || r.Attempts != 1 {
				t.Errorf("record %s %q attempts %d, want failed %s after 1 run", r.State, r.Reason, r.Attempts, code)
			}
			if n := len(e.queue.messages()); n != 0 {
				t.Errorf("%d retry messages, want none", n)
			}
			if _, ok := e.blobs.get("quarantine", "v/a.mp4"); !ok {
				t.Errorf("input not quarantined")
			}
		})
	}
	t.Run("a code this version does not know", func(t *testing.T) {
		e := newEnv(t, nil)
		f := e.dispatched("v/a.mp4")
		e.blobs.put("logs", batch.ResultBlob(f.key), []byte("ffpipe-result 1\nfailed brand_new_code why\n"), e.now)
		e.complete(f, true, 0, nil)
		e.sweep()
		if r := e.record(f.key); r.State != records.StateFailed || !strings.HasPrefix(r.Reason, "task_failed: brand_new_code: why") {
			t.Errorf("record %s %q, want failed task_failed naming the code", r.State, r.Reason)
		}
	})
}

// TestSweepTimeoutRunsTwice: a wall-clock timeout (a slow or lost node) is
// dispatched again once, then recorded.
func TestSweepTimeoutRunsTwice(t *testing.T) {
	e := newEnv(t, nil)
	f := e.dispatched("v/a.mp4")
	timeout := func(ct *batch.CompletedTask) {
		ct.FailureCategory, ct.FailureCode = "usererror", "MaxWallClockTimeExpiry"
	}
	e.complete(f, false, 137, timeout)
	e.sweep()
	if r := e.record(f.key); r.State != records.StateQueued || !strings.Contains(r.Reason, "timeout") || len(e.queue.messages()) != 1 {
		t.Fatalf("after the first timeout: %s %q with %d messages, want queued again", r.State, r.Reason, len(e.queue.messages()))
	}
	e.batch.tasks[f.key] = batch.TaskSpec{Key: f.key, Request: f.req}
	e.batch.completed = nil
	e.complete(f, false, 137, timeout)
	e.sweep()
	if r := e.record(f.key); r.State != records.StateFailed || !strings.HasPrefix(r.Reason, "timeout:") || len(e.queue.messages()) != 1 {
		t.Errorf("after the second timeout: %s %q with %d messages, want failed", r.State, r.Reason, len(e.queue.messages()))
	}
}

// TestOnBlobCreatedReadsProfileMetadata: OnBlobCreated reads the upload's
// ffpipe_profile metadata (the event carries none) and puts the profile in
// the message, so Dispatch needs no storage call; without metadata the
// message names none (Dispatch applies the routes and the default); an
// unknown profile is a failed record, nothing sent; a storage error makes
// the trigger retry.
func TestOnBlobCreatedReadsProfileMetadata(t *testing.T) {
	tests := []struct {
		name     string
		meta     map[string]string
		config   func(m map[string]string)
		fail     bool
		wantCode int
		want     string // the message's profile; "-" = no message
		state    records.State
	}{
		{name: "metadata names the profile", meta: map[string]string{"ffpipe_profile": "hls"}, wantCode: http.StatusOK, want: "hls"},
		{name: "metadata key in another case", meta: map[string]string{"FFPIPE_PROFILE": "web"}, wantCode: http.StatusOK, want: "web"},
		{name: "no metadata", wantCode: http.StatusOK, want: ""},
		{name: "metadata off", meta: map[string]string{"ffpipe_profile": "hls"}, config: func(m map[string]string) { m["FFPIPE_PROFILE_METADATA"] = "false" }, wantCode: http.StatusOK, want: ""},
		{name: "unknown profile", meta: map[string]string{"ffpipe_profile": "nope"}, wantCode: http.StatusOK, want: "-", state: records.StateFailed},
		{name: "storage error", meta: map[string]string{"ffpipe_profile": "hls"}, fail: true, wantCode: http.StatusInternalServerError, want: "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.config)
			etag := e.blobs.put("input", "v/a.mp4", []byte("0123456789"), e.now)
			b, _ := e.blobs.get("input", "v/a.mp4")
			for k, v := range tt.meta {
				b.meta[k] = v
			}
			if tt.fail {
				e.blobs.fail["props"] = errTransient
			}
			ev := event(blobCreated, testTopic, subject("input", "v/a.mp4"), `"`+etag+`"`, 10)
			code, resp := e.invoke(FuncOnBlobCreated, envelope(BindingEvent, ev))
			if code != tt.wantCode {
				t.Fatalf("status: got %d, want %d (logs %v)", code, tt.wantCode, resp.Logs)
			}
			msgs := e.queue.messages()
			if tt.want == "-" {
				if len(msgs) != 0 {
					t.Errorf("messages: got %d, want none", len(msgs))
				}
				if tt.state != "" {
					r := e.record(request.Key("ingestacct", "input", "v/a.mp4", etag))
					if r.State != tt.state || !strings.HasPrefix(r.Reason, "unknown_profile") || !strings.Contains(r.Reason, "metadata") {
						t.Errorf("record %s %q, want %s unknown_profile (chosen by metadata)", r.State, r.Reason, tt.state)
					}
				}
				return
			}
			if len(msgs) != 1 {
				t.Fatalf("messages: got %d, want 1", len(msgs))
			}
			req, err := request.Decode(msgs[0].Body)
			if err != nil || req.Profile != tt.want || req.Source.ETag != etag || req.Source.Size != 10 {
				t.Errorf("message %+v (%v), want profile %q with the event's eTag and size", req, err, tt.want)
			}
		})
	}
}
