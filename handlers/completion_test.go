package handlers

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/events"
	"github.com/ffpipe/ffpipe/internal/records"
)

// published decodes the events the fake topic received, by id.
func (e *env) published() map[string]events.Event {
	e.t.Helper()
	out := map[string]events.Event{}
	for _, m := range e.events.messages() {
		ev, err := events.Parse(m.Body)
		if err != nil {
			e.t.Fatalf("message %s: %v", m.ID, err)
		}
		if m.ID != ev.ID || m.ContentType != events.ContentType || m.Properties["type"] != ev.Type {
			e.t.Errorf("message %s: id, content type or type property do not match the event %+v (%q, %v)", m.ID, ev, m.ContentType, m.Properties)
		}
		out[ev.ID] = ev
	}
	return out
}

func TestCompletionEvents(t *testing.T) {
	e := newEnv(t, nil)
	good := e.dispatched("v/good.mp4")
	bad := e.dispatched("v/bad.mp4")
	e.blobs.put("output", "v/good.mp3", []byte("mp3-bytes"), e.now)
	e.complete(good, true, 0, nil)
	e.complete(bad, false, 1, nil)
	if code := e.sweep(); code != http.StatusOK {
		t.Fatalf("sweep: got %d, want 200", code)
	}
	got := e.published()
	for _, tc := range []struct {
		f     sweepFixture
		state records.State
		blob  string
	}{{good, records.StateDone, "v/good.mp4"}, {bad, records.StateFailed, "v/bad.mp4"}} {
		ev, ok := got[tc.f.key+"-"+string(tc.state)]
		if !ok {
			t.Errorf("no %s event for %s: got %v", tc.state, tc.blob, got)
			continue
		}
		if ev.Type != "ffpipe.transcode."+string(tc.state) || !strings.HasSuffix(ev.Subject, "/"+tc.blob) || ev.Source != "/ffpipe/ingestacct" {
			t.Errorf("event %s: type %q subject %q source %q", ev.ID, ev.Type, ev.Subject, ev.Source)
		}
		if rec := e.record(tc.f.key); ev.Data.State != tc.state || ev.Data.Key != tc.f.key || !ev.Time.Equal(rec.Updated) {
			t.Errorf("event %s data: got %+v, want the record %+v", ev.ID, ev.Data, rec)
		}
	}
	if ev := got[good.key+"-done"]; ev.Data.Output.Blob != "v/good.mp3" || ev.Data.Output.Size != 9 {
		t.Errorf("done event's output: got %+v", ev.Data.Output)
	}
	if n := len(got); n != 2 {
		t.Errorf("events: got %d, want 2", n)
	}
}

// TestCompletionEventOutbox: the topic is down when a file ends. The file
// is settled all the same (record, task deleted), the event waits in the
// outbox, and the next Sweep publishes it once the topic is back.
func TestCompletionEventOutbox(t *testing.T) {
	e := newEnv(t, nil)
	f := e.dispatched("v/a.mp4")
	e.blobs.put("output", "v/a.mp3", []byte("mp3-bytes"), e.now)
	e.complete(f, true, 0, nil)
	e.events.fail(errors.New("topic unavailable"))
	if code := e.sweep(); code != http.StatusOK {
		t.Fatalf("sweep with the topic down: got %d, want 200 (never blocked by events)", code)
	}
	if r := e.record(f.key); r.State != records.StateDone || e.batch.has(f.key) {
		t.Fatalf("file not settled while the topic was down: record %s, task kept %v", r.State, e.batch.has(f.key))
	}
	waiting, err := e.records.Index().OutboxList(t.Context(), 10)
	if err != nil || len(waiting) != 1 || waiting[0].ID != f.key+"-done" {
		t.Fatalf("outbox: got %v, %v; want the done event", waiting, err)
	}
	// Still down: the event stays.
	e.now = e.now.Add(time.Minute)
	e.sweep()
	if w, _ := e.records.Index().OutboxList(t.Context(), 10); len(w) != 1 {
		t.Fatalf("outbox after a failed retry: got %d events, want 1", len(w))
	}
	e.events.fail(nil)
	e.now = e.now.Add(time.Minute)
	e.sweep()
	if _, ok := e.published()[f.key+"-done"]; !ok {
		t.Errorf("event not published from the outbox")
	}
	if w, _ := e.records.Index().OutboxList(t.Context(), 10); len(w) != 0 {
		t.Errorf("outbox after publishing: got %d events, want 0", len(w))
	}
}

// TestCompletionEventNeitherPublishedNorKept: with the topic and the
// outbox both failing, Sweep keeps the task, so the next run settles and
// publishes again: at least once.
func TestCompletionEventNeitherPublishedNorKept(t *testing.T) {
	e := newEnv(t, nil)
	f := e.dispatched("v/a.mp4")
	e.blobs.put("output", "v/a.mp3", []byte("mp3-bytes"), e.now)
	e.complete(f, true, 0, nil)
	e.events.fail(errors.New("topic unavailable"))
	e.blobs.fail["put "+e.cfg.IndexContainer+"/outbox/"+f.key+"-done"] = errTransient
	if code := e.sweep(); code == http.StatusOK {
		t.Fatalf("sweep: got 200, want a failure that keeps the task")
	}
	if !e.batch.has(f.key) {
		t.Fatalf("task deleted although its event was neither published nor kept")
	}
	delete(e.blobs.fail, "put "+e.cfg.IndexContainer+"/outbox/"+f.key+"-done")
	e.events.fail(nil)
	e.now = e.now.Add(time.Minute) // past the publish pause
	if code := e.sweep(); code != http.StatusOK {
		t.Fatalf("second sweep: got %d, want 200", code)
	}
	if _, ok := e.published()[f.key+"-done"]; !ok || e.batch.has(f.key) {
		t.Errorf("second run: event published %v, task kept %v; want published and deleted", ok, e.batch.has(f.key))
	}
}

// TestCompletionEventRepeatedIsSameID: a Sweep that settles the same task
// again (its delete failed) publishes the same id, which the topic's
// duplicate detection drops.
func TestCompletionEventRepeatedIsSameID(t *testing.T) {
	e := newEnv(t, nil)
	f := e.dispatched("v/a.mp4")
	e.blobs.put("output", "v/a.mp3", []byte("mp3-bytes"), e.now)
	e.complete(f, true, 0, nil)
	e.batch.deleteErr = errTransient
	e.sweep()
	e.batch.deleteErr = nil
	e.sweep()
	msgs := e.events.messages()
	if len(msgs) != 2 || msgs[0].ID != msgs[1].ID || msgs[0].ID != f.key+"-done" {
		var ids []string
		for _, m := range msgs {
			ids = append(ids, m.ID)
		}
		t.Errorf("messages: got ids %v, want the same id twice", ids)
	}
}
