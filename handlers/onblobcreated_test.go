package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
)

const (
	goldenBlob = "2026/03/report.mp4"
	goldenETag = "0x8DC4BCC2E4835CD"
	testTopic  = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/ingestacct"
)

// event returns Event Grid schema event text.
func event(eventType, topic, subject, etag string, size int64) string {
	b, _ := json.MarshalIndent(map[string]any{
		"topic": topic, "subject": subject, "eventType": eventType, "id": "ev-1",
		"eventTime": "2026-03-01T09:12:33Z", "dataVersion": "", "metadataVersion": "1",
		"data": map[string]any{"api": "PutBlob", "eTag": etag, "contentLength": size, "blobType": "BlockBlob",
			"url": "https://ingestacct.blob.core.windows.net/x"},
	}, "", "  ")
	return string(b)
}

func subject(container, blob string) string {
	return "/blobServices/default/containers/" + container + "/blobs/" + blob
}

func TestOnBlobCreatedGoldenPayloads(t *testing.T) {
	wantKey := request.Key("ingestacct", "input", goldenBlob, goldenETag)
	tests := []struct {
		file, wantCorrelation string
	}{
		{"eventgrid_blobcreated.json", "831e1650-001e-001b-66ab-eeb76e069631"},
		{"cloudevents_blobcreated.json", "831e1650-001e-001b-66ab-eeb76e069632"},
		{"eventgrid_single_encoded.json", "831e1650-001e-001b-66ab-eeb76e069631"},
		{"eventgrid_object.json", "831e1650-001e-001b-66ab-eeb76e069631"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			e := newEnv(t, nil)
			code, resp := e.invoke(FuncOnBlobCreated, golden(t, tt.file))
			if code != http.StatusOK {
				t.Fatalf("status: got %d, want 200 (logs %v)", code, resp.Logs)
			}
			msgs := e.queue.messages()
			if len(msgs) != 1 {
				t.Fatalf("messages: got %d, want 1", len(msgs))
			}
			m := msgs[0]
			if m.ID != wantKey || m.CorrelationID != tt.wantCorrelation {
				t.Errorf("message id/correlation: got %s/%s, want %s/%s", m.ID, m.CorrelationID, wantKey, tt.wantCorrelation)
			}
			req, err := request.Decode(m.Body)
			if err != nil {
				t.Fatalf("body does not decode: %v", err)
			}
			// No profile: Dispatch reads the upload's ffpipe_profile
			// metadata (the event does not carry it) before the routes and
			// the default decide.
			want := request.Request{V: 1, Source: request.Source{Container: "input", Blob: goldenBlob, ETag: goldenETag, Size: 524288},
				CorrelationID: tt.wantCorrelation}
			if req != want {
				t.Errorf("request: got %+v, want %+v", req, want)
			}
			if m.Properties["key"] != wantKey {
				t.Errorf("application property key: got %v, want %s", m.Properties["key"], wantKey)
			}
			rec := e.record(wantKey)
			if rec.State != records.StateQueued || rec.CorrelationID != tt.wantCorrelation || rec.Timings.Event == nil || rec.Timings.Enqueued == nil || rec.Output.Blob != "2026/03/report.mp3" {
				t.Errorf("record: got %+v", rec)
			}
			if !strings.Contains(e.logs.String(), `"key":"`+wantKey+`"`) || !strings.Contains(e.logs.String(), `"correlationId":"`+tt.wantCorrelation+`"`) {
				t.Errorf("log lines lack key and correlationId: %s", e.logs.String())
			}
		})
	}
}

func TestOnBlobCreatedIgnores(t *testing.T) {
	tests := []struct {
		name, text string
	}{
		{"blob deleted", event("Microsoft.Storage.BlobDeleted", testTopic, subject("input", "a.mp4"), "0x1", 10)},
		{"other account", event(blobCreated, strings.Replace(testTopic, "ingestacct", "evilacct", 1), subject("input", "a.mp4"), "0x1", 10)},
		{"no account in topic", event(blobCreated, "/subscriptions/0000/resourceGroups/rg", subject("input", "a.mp4"), "0x1", 10)},
		{"other container", event(blobCreated, testTopic, subject("output", "a.mp4"), "0x1", 10)},
		{"suffix", event(blobCreated, testTopic, subject("input", "notes.txt"), "0x1", 10)},
		{"suffix inside name", event(blobCreated, testTopic, subject("input", "a.mp4.txt"), "0x1", 10)},
		{"bad subject", event(blobCreated, testTopic, "/blobServices/default/containers/input", "0x1", 10)},
		{"unparsable", `{"topic": `},
		{"ADLS CreateFile (not yet written)", strings.Replace(event(blobCreated, testTopic, subject("input", "a.mp4"), "0x1", 0), `"PutBlob"`, `"CreateFile"`, 1)},
		{"not an object", `42`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			code, resp := e.invoke(FuncOnBlobCreated, envelope(BindingEvent, tt.text))
			if code != http.StatusOK {
				t.Fatalf("status: got %d, want 200", code)
			}
			if n := len(e.queue.messages()); n != 0 {
				t.Errorf("messages: got %d, want 0", n)
			}
			if len(e.blobs.blobs) != 0 {
				t.Errorf("blobs written: got %d, want 0", len(e.blobs.blobs))
			}
			if len(resp.Logs) == 0 || !strings.Contains(resp.Logs[0], "ignored") {
				t.Errorf("Logs: got %v, want an 'ignored' line", resp.Logs)
			}
			if !strings.Contains(e.logs.String(), "ignored") {
				t.Errorf("no log line for the ignored event: %s", e.logs.String())
			}
		})
	}
}

func TestOnBlobCreatedAccepts(t *testing.T) {
	tests := []struct {
		name, blob, suffixes string
	}{
		{"upper-case suffix", "A/B.MP4", ""},
		{"configured suffix", "clip.mov", ".mp4,.MOV"},
		{"shell metacharacters", "a;rm -rf ~ $(id) `id`.mp4", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(m map[string]string) {
				if tt.suffixes != "" {
					m["FFPIPE_ALLOWED_SUFFIXES"] = tt.suffixes
				}
			})
			code, _ := e.invoke(FuncOnBlobCreated, envelope(BindingEvent, event(blobCreated, testTopic, subject("input", tt.blob), `"0x42"`, 10)))
			msgs := e.queue.messages()
			if code != http.StatusOK || len(msgs) != 1 {
				t.Fatalf("got status %d and %d messages, want 200 and 1", code, len(msgs))
			}
			if want := request.Key("ingestacct", "input", tt.blob, "0x42"); msgs[0].ID != want {
				t.Errorf("message id: got %s, want %s", msgs[0].ID, want)
			}
		})
	}
}

// A replayed event for work that finished sends nothing: Dispatch reads no
// records, so this is where finished work is recognised.
func TestOnBlobCreatedFinishedWork(t *testing.T) {
	for _, st := range []records.State{records.StateDone, records.StateFailed, records.StateQueued} {
		t.Run(string(st), func(t *testing.T) {
			e := newEnv(t, nil)
			key := request.Key("ingestacct", "input", "a.mp4", "0x42")
			_ = e.records.Put(t.Context(), records.Record{Key: key, State: st, Reason: "earlier"})
			code, resp := e.invoke(FuncOnBlobCreated, envelope(BindingEvent, event(blobCreated, testTopic, subject("input", "a.mp4"), `"0x42"`, 10)))
			if code != http.StatusOK {
				t.Fatalf("status %d (%v)", code, resp.Logs)
			}
			want := 0
			if !st.Terminal() {
				want = 1 // queued, e.g. a Sweep retry: sent again (duplicate detection or TaskExists absorbs it)
			}
			if n := len(e.queue.messages()); n != want {
				t.Errorf("messages: got %d, want %d", n, want)
			}
			if r := e.record(key); r.State != st {
				t.Errorf("record: got %s, want %s", r.State, st)
			}
		})
	}
	t.Run("records unreadable: retried, nothing sent", func(t *testing.T) {
		e := newEnv(t, nil)
		key := request.Key("ingestacct", "input", "a.mp4", "0x42")
		e.blobs.fail["get status/"+key] = errTransient
		code, _ := e.invoke(FuncOnBlobCreated, envelope(BindingEvent, event(blobCreated, testTopic, subject("input", "a.mp4"), `"0x42"`, 10)))
		if code != http.StatusInternalServerError || len(e.queue.messages()) != 0 {
			t.Errorf("got %d and %d messages, want 500 and none", code, len(e.queue.messages()))
		}
	})
}

func TestOnBlobCreatedRejects(t *testing.T) {
	long := strings.Repeat("x", 1020) + ".mp4" // 1,024 characters; its output is longer
	tests := []struct {
		name       string
		blob       string
		size       int64
		template   string
		wantState  records.State
		wantReason string
	}{
		{"empty", "a.mp4", 0, "", records.StateRejected, "empty"},
		{"too large", "a.mp4", 1000001, "", records.StateRejected, "too_large"},
		{"output name too long", long, 10, "{dir}/{name}.{ext}", records.StateBadRequest, "name_too_long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(m map[string]string) {
				if tt.template != "" {
					m["FFPIPE_OUTPUT_TEMPLATE"] = tt.template
				}
			})
			code, _ := e.invoke(FuncOnBlobCreated, envelope(BindingEvent, event(blobCreated, testTopic, subject("input", tt.blob), "0x7", tt.size)))
			if code != http.StatusOK {
				t.Fatalf("status: got %d, want 200", code)
			}
			if n := len(e.queue.messages()); n != 0 {
				t.Errorf("messages: got %d, want 0", n)
			}
			rec := e.record(request.Key("ingestacct", "input", tt.blob, "0x7"))
			if rec.State != tt.wantState || !strings.HasPrefix(rec.Reason, tt.wantReason) {
				t.Errorf("record: got %s %q, want %s %q…", rec.State, rec.Reason, tt.wantState, tt.wantReason)
			}
		})
	}
}

func TestOnBlobCreatedTransientFailures(t *testing.T) {
	t.Run("send fails: 500 so Event Grid retries", func(t *testing.T) {
		e := newEnv(t, nil)
		e.queue.err = fmt.Errorf("amqp: connection lost: %w", errTransient)
		code, _ := e.invoke(FuncOnBlobCreated, golden(t, "eventgrid_blobcreated.json"))
		if code != http.StatusInternalServerError {
			t.Errorf("status: got %d, want 500", code)
		}
		e.noRecord(request.Key("ingestacct", "input", goldenBlob, goldenETag))
		// The retry succeeds and sends the same message id.
		e.queue.err = nil
		if code, _ := e.invoke(FuncOnBlobCreated, golden(t, "eventgrid_blobcreated.json")); code != http.StatusOK {
			t.Errorf("retry status: got %d, want 200", code)
		}
	})
	t.Run("rejection record not written: 500", func(t *testing.T) {
		e := newEnv(t, nil)
		e.blobs.fail["put"] = errTransient
		code, _ := e.invoke(FuncOnBlobCreated, envelope(BindingEvent, event(blobCreated, testTopic, subject("input", "a.mp4"), "0x1", 0)))
		if code != http.StatusInternalServerError {
			t.Errorf("status: got %d, want 500", code)
		}
	})
	t.Run("queued record not written: still 200 (the message is sent)", func(t *testing.T) {
		e := newEnv(t, nil)
		e.blobs.fail["put"] = errTransient
		code, _ := e.invoke(FuncOnBlobCreated, golden(t, "eventgrid_blobcreated.json"))
		if code != http.StatusOK || len(e.queue.messages()) != 1 {
			t.Errorf("got status %d and %d messages, want 200 and 1", code, len(e.queue.messages()))
		}
	})
	t.Run("missing eTag: looked up; lookup fails: 500", func(t *testing.T) {
		e := newEnv(t, nil)
		e.blobs.fail["props"] = errTransient
		code, _ := e.invoke(FuncOnBlobCreated, envelope(BindingEvent, event(blobCreated, testTopic, subject("input", "a.mp4"), "", 10)))
		if code != http.StatusInternalServerError {
			t.Errorf("status: got %d, want 500", code)
		}
	})
	t.Run("missing eTag: looked up from storage", func(t *testing.T) {
		e := newEnv(t, nil)
		etag := e.blobs.put("input", "a.mp4", []byte("12345"), e.now)
		code, _ := e.invoke(FuncOnBlobCreated, envelope(BindingEvent, event(blobCreated, testTopic, subject("input", "a.mp4"), "", 5)))
		msgs := e.queue.messages()
		if code != http.StatusOK || len(msgs) != 1 || msgs[0].ID != request.Key("ingestacct", "input", "a.mp4", etag) {
			t.Errorf("got status %d, messages %+v; want one with the stored eTag's key", code, msgs)
		}
	})
	t.Run("missing eTag and blob gone: ignored", func(t *testing.T) {
		e := newEnv(t, nil)
		code, _ := e.invoke(FuncOnBlobCreated, envelope(BindingEvent, event(blobCreated, testTopic, subject("input", "gone.mp4"), "", 5)))
		if code != http.StatusOK || len(e.queue.messages()) != 0 {
			t.Errorf("got status %d and %d messages, want 200 and 0", code, len(e.queue.messages()))
		}
	})
}

func TestOnBlobCreatedEventArray(t *testing.T) {
	e := newEnv(t, nil)
	text := "[" + event(blobCreated, testTopic, subject("input", "a.mp4"), "0x1", 10) + "," +
		event(blobCreated, testTopic, subject("input", "b.mp4"), "0x2", 10) + "]"
	code, _ := e.invoke(FuncOnBlobCreated, envelope(BindingEvent, text))
	if code != http.StatusOK || len(e.queue.messages()) != 2 {
		t.Errorf("got status %d and %d messages, want 200 and 2", code, len(e.queue.messages()))
	}
}
