package handlers

import (
	"strings"
	"testing"

	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
)

func TestRedrive(t *testing.T) {
	type setup struct {
		inInput, inQuarantine, newerUpload bool
		state                              records.State
	}
	for _, tc := range []struct {
		name     string
		s        setup
		wantKind string
		wantWhy  string
	}{
		{"quarantined input is moved back", setup{inQuarantine: true, state: records.StateFailed}, RedriveMoveBack, ""},
		{"input kept in place is sent again", setup{inInput: true, state: records.StateFailed}, RedriveSendAgain, ""},
		{"input gone", setup{state: records.StateFailed}, RedriveSkip, "input is gone"},
		{"a newer upload took the name", setup{inQuarantine: true, newerUpload: true, state: records.StateFailed}, RedriveSkip, "newer upload"},
		{"done is not redriven", setup{inInput: true, state: records.StateDone}, RedriveSkip, "not a failure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			ctx := t.Context()
			etag := e.blobs.put("input", "v/a.mp4", []byte("input-bytes"), e.now)
			key := request.Key("ingestacct", "input", "v/a.mp4", etag)
			if tc.s.inQuarantine {
				if err := e.blobs.Move(ctx, "input", "v/a.mp4", etag, "quarantine", "v/a.mp4"); err != nil {
					t.Fatal(err)
				}
			} else if !tc.s.inInput {
				_ = e.blobs.DeleteIfMatch(ctx, "input", "v/a.mp4", etag)
			}
			if tc.s.newerUpload {
				e.blobs.put("input", "v/a.mp4", []byte("newer"), e.now)
			}
			rec := records.Record{Key: key, State: tc.s.state, Reason: "decode_error: exit code 65", CorrelationID: "c1",
				Source: records.Blob{Container: "input", Blob: "v/a.mp4", ETag: etag, Size: 11}}
			putIndexed(t, e, rec)
			rec = e.record(key)
			d := RedriveDeps{Blobs: e.blobs, Queue: e.queue, Records: e.records, Config: e.cfg, Account: "ingestacct"}
			act, err := PlanRedrive(ctx, d, rec)
			if err != nil || act.Kind != tc.wantKind || !strings.Contains(act.Reason, tc.wantWhy) {
				t.Fatalf("plan: got %+v, %v; want %s (%q)", act, err, tc.wantKind, tc.wantWhy)
			}
			if _, err := ApplyRedrive(ctx, d, rec, act); err != nil {
				t.Fatal(err)
			}
			switch tc.wantKind {
			case RedriveMoveBack:
				b, ok := e.blobs.get("input", "v/a.mp4")
				if _, still := e.blobs.get("quarantine", "v/a.mp4"); !ok || still {
					t.Fatalf("after the move: in input %v, still in quarantine %v", ok, still)
				}
				newKey := request.Key("ingestacct", "input", "v/a.mp4", b.etag)
				if got := e.record(key).RedrivenTo; got != newKey || newKey == key {
					t.Errorf("old record points to %q, want the new key %q", got, newKey)
				}
				// Idempotent: the second run skips it.
				again, err := PlanRedrive(ctx, d, e.record(key))
				if err != nil || again.Kind != RedriveSkip || !strings.Contains(again.Reason, "already redriven") {
					t.Errorf("second plan: got %+v, %v; want a skip", again, err)
				}
			case RedriveSendAgain:
				rec2 := e.record(key)
				act2, _ := PlanRedrive(ctx, d, rec2)
				if _, err := ApplyRedrive(ctx, d, rec2, act2); err != nil {
					t.Fatal(err)
				}
				msgs := e.queue.messages()
				if len(msgs) != 2 || msgs[0].ID != msgs[1].ID || !strings.HasPrefix(msgs[0].ID, key+"-redrive-") {
					t.Fatalf("messages: got %+v, want the same redrive id twice (duplicate detection keeps one)", msgs)
				}
				req, err := request.Decode(msgs[0].Body)
				if err != nil || req.Source.Blob != "v/a.mp4" || req.Source.ETag != etag || req.CorrelationID != "c1" {
					t.Errorf("request: got %+v, %v", req, err)
				}
			default:
				if len(e.queue.messages()) != 0 || e.record(key).RedrivenTo != "" {
					t.Errorf("a skipped record was acted on")
				}
			}
		})
	}
}

// TestStatusRedriveIsAPost: the Status page's redrive action is a POST on
// the file's key; a GET of the same URL changes nothing, and the record
// page offers the action as a form that posts.
func TestStatusRedriveIsAPost(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	etag := e.blobs.put("input", "v/a.mp4", []byte("input-bytes"), e.now)
	key := request.Key("ingestacct", "input", "v/a.mp4", etag)
	if err := e.blobs.Move(ctx, "input", "v/a.mp4", etag, "quarantine", "v/a.mp4"); err != nil {
		t.Fatal(err)
	}
	putIndexed(t, e, records.Record{Key: key, State: records.StateFailed, Reason: "decode_error: x",
		Source: records.Blob{Container: "input", Blob: "v/a.mp4", ETag: etag}})
	url := "http://localhost/api/status/" + key
	page := e.status(statusEnvelope(url, map[string]string{"key": key}, map[string][]string{"Accept": {"text/html"}}))
	if !strings.Contains(page.Body, `<form method="post">`) || !strings.Contains(page.Body, `id="redrive"`) {
		t.Errorf("record page offers no redrive form:\n%s", page.Body)
	}
	if _, ok := e.blobs.get("quarantine", "v/a.mp4"); !ok {
		t.Fatal("a GET moved the input")
	}
	post := func() httpResponse {
		body := strings.Replace(string(statusEnvelope(url, map[string]string{"key": key}, nil)), `"Method":"GET"`, `"Method":"POST"`, 1)
		return e.status([]byte(body))
	}
	if hr := post(); hr.StatusCode != 202 || !strings.Contains(hr.Body, RedriveMoveBack) {
		t.Fatalf("POST: got %d %s, want 202 and the move back", hr.StatusCode, hr.Body)
	}
	if _, ok := e.blobs.get("input", "v/a.mp4"); !ok {
		t.Fatal("the input is not back in the input container")
	}
	if hr := post(); hr.StatusCode != 409 || !strings.Contains(hr.Body, "already redriven") {
		t.Errorf("second POST: got %d %s, want 409 already redriven", hr.StatusCode, hr.Body)
	}
}
