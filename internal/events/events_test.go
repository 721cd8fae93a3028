package events

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/records"
)

func TestNew(t *testing.T) {
	upd := time.Date(2026, 3, 1, 10, 0, 0, 0, time.FixedZone("x", 3600))
	base := records.Record{Key: "0123456789abcdef0123456789abcdef", Updated: upd,
		Source: records.Blob{Container: "input", Blob: "videos/a b.mp4"}, Output: records.Blob{Container: "output", Blob: "videos/a b.mp3", Size: 9}}
	for _, st := range []records.State{records.StateDone, records.StateFailed, records.StateInputMissing, records.StateBadRequest, records.StateRejected} {
		t.Run(string(st), func(t *testing.T) {
			r := base
			r.State = st
			ev, err := New("acct", r)
			if err != nil {
				t.Fatal(err)
			}
			if want := "ffpipe.transcode." + string(st); ev.Type != want {
				t.Errorf("type: got %q, want %q", ev.Type, want)
			}
			if want := r.Key + "-" + string(st); ev.ID != want {
				t.Errorf("id: got %q, want %q", ev.ID, want)
			}
			if want := "/blobServices/default/containers/input/blobs/videos/a b.mp4"; ev.Subject != want || !strings.HasSuffix(ev.Subject, "a b.mp4") {
				t.Errorf("subject: got %q, want %q", ev.Subject, want)
			}
			if ev.Source != "/ffpipe/acct" || ev.SpecVersion != "1.0" || !ev.Time.Equal(upd) || ev.Time.Location() != time.UTC {
				t.Errorf("source %q, specversion %q, time %v", ev.Source, ev.SpecVersion, ev.Time)
			}
			b, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if back.ID != ev.ID || back.Data.Output != r.Output || back.Data.State != st {
				t.Errorf("round trip: got %+v, want %+v", back, ev)
			}
		})
	}
	for _, st := range []records.State{records.StateQueued, records.StateDispatched} {
		r := base
		r.State = st
		if _, err := New("acct", r); err == nil {
			t.Errorf("New(%s): got no error, want one (not a final state)", st)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":          `{`,
		"no specversion":    `{"id":"a","source":"s","type":"ffpipe.transcode.done"}`,
		"version 0.3":       `{"specversion":"0.3","id":"a","source":"s","type":"ffpipe.transcode.done"}`,
		"no id":             `{"specversion":"1.0","source":"s","type":"ffpipe.transcode.done"}`,
		"someone else's":    `{"specversion":"1.0","id":"a","source":"s","type":"com.example.other"}`,
		"data not a record": `{"specversion":"1.0","id":"a","source":"s","type":"ffpipe.transcode.done","data":[1]}`,
	} {
		if _, err := Parse([]byte(body)); err == nil {
			t.Errorf("%s: got no error", name)
		}
	}
}

func FuzzParse(f *testing.F) {
	ev, _ := New("acct", records.Record{Key: "k", State: records.StateDone, Source: records.Blob{Container: "input", Blob: "a.mp4"}})
	b, _ := json.Marshal(ev)
	f.Add(b)
	f.Add([]byte(`{"specversion":"1.0","id":"a","source":"s","type":"ffpipe.transcode.failed","data":{"key":"k","state":"failed"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := Parse(b)
		if err != nil {
			return
		}
		// What parses must encode and parse back to the same attributes.
		again, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		back, err := Parse(again)
		if err != nil || back.ID != ev.ID || back.Type != ev.Type || back.Source != ev.Source {
			t.Fatalf("round trip: %+v, %v; want %+v", back, err, ev)
		}
	})
}
