package handlers

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestReadinessAndRoutes(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		method, path string
		body         string
		want         int
	}{
		{http.MethodGet, "/", "", http.StatusOK},
		{http.MethodGet, "/NoSuchFunction", "", http.StatusNotFound},
		{http.MethodGet, "/Dispatch", "", http.StatusMethodNotAllowed},
		{http.MethodPost, "/Dispatch", "{not json", http.StatusOK}, // a retry cannot fix it
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body)))
		if rec.Code != tt.want {
			t.Errorf("%s %s: got %d, want %d", tt.method, tt.path, rec.Code, tt.want)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type got %q, want application/json", tt.method, tt.path, ct)
		}
		if !json.Valid(rec.Body.Bytes()) || rec.Body.Len() == 0 {
			t.Errorf("%s %s: body %q is not a JSON document", tt.method, tt.path, rec.Body.String())
		}
	}
}

func TestResponseShape(t *testing.T) {
	e := newEnv(t, nil)
	code, resp := e.invoke(FuncSweep, golden(t, "timer.json"))
	if code != http.StatusOK || resp.Outputs == nil || resp.Logs == nil {
		t.Errorf("got %d %+v; want 200 with non-nil Outputs and Logs", code, resp)
	}
}

func TestDecodeValue(t *testing.T) {
	tests := []struct {
		name, raw, want string
		ok              bool
	}{
		{"double-encoded object", `"\"{\\\"a\\\":1}\""`, `{"a":1}`, true},
		{"single-encoded object", `"{\"a\":1}"`, `{"a":1}`, true},
		{"raw object", `{"a":1}`, `{"a":1}`, true},
		{"raw array", `[1,2]`, `[1,2]`, true},
		{"double-encoded array", `"[\"x\",\"y\"]"`, `["x","y"]`, true},
		{"plain string", `"hello"`, `hello`, true},
		{"double-encoded plain string", `"\"hello\""`, `hello`, true},
		{"null", `null`, ``, false},
		{"empty", ``, ``, false},
		{"broken string", `"abc`, ``, false},
	}
	for _, tt := range tests {
		got, err := decodeValue(json.RawMessage(tt.raw))
		if (err == nil) != tt.ok || string(got) != tt.want {
			t.Errorf("%s: got %q, %v; want %q, ok=%v", tt.name, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseEvents(t *testing.T) {
	eg := `{"topic":"/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/Acct","subject":"/blobServices/default/containers/input/blobs/a/b c.mp4","eventType":"Microsoft.Storage.BlobCreated","eventTime":"2026-03-01T09:12:33.1234567Z","id":"1","data":{"eTag":"0x1","contentLength":"42","url":"https://acct.blob.core.windows.net/input/a/b%20c.mp4"}}`
	ce := `{"source":"/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/acct","subject":"/blobServices/default/containers/input/blobs/x.mp4","type":"Microsoft.Storage.BlobCreated","time":"2026-03-01T09:12:33","id":"2","specversion":"1.0","data":{"eTag":"\"0x2\"","contentLength":7}}`
	evs, err := ParseEvents([]byte("[" + eg + "," + ce + "]"))
	if err != nil || len(evs) != 2 {
		t.Fatalf("got %v, %v", evs, err)
	}
	if e := evs[0]; e.CloudEvent || TopicAccount(e.Topic) != "Acct" || e.Size != 42 || !e.HasSize || e.ETag != "0x1" || e.Time.Nanosecond() != 123456700 {
		t.Errorf("event grid: got %+v", e)
	}
	if e := evs[1]; !e.CloudEvent || e.Type != blobCreated || e.Size != 7 || e.ETag != `"0x2"` || !e.Time.Equal(time.Date(2026, 3, 1, 9, 12, 33, 0, time.UTC)) {
		t.Errorf("cloud event: got %+v", e)
	}
	c, b, ok := SubjectBlob(evs[0].Subject)
	if !ok || c != "input" || b != "a/b c.mp4" {
		t.Errorf("SubjectBlob: got %q %q %v", c, b, ok)
	}
	for _, bad := range []string{"", "/blobServices/default/containers/input", "/blobServices/default/containers//blobs/x", "/blobServices/default/containers/input/blobs/", "/x/containers/input/blobs/a"} {
		if _, _, ok := SubjectBlob(bad); ok {
			t.Errorf("SubjectBlob(%q): got ok", bad)
		}
	}
	for _, bad := range []string{`{"data":{"contentLength":-1}}`, `{"data":{"contentLength":"x"}}`, `[1]`, `{`} {
		if _, err := ParseEvents([]byte(bad)); err == nil {
			t.Errorf("ParseEvents(%q): got nil error", bad)
		}
	}
}

func FuzzParseEvents(f *testing.F) {
	f.Add([]byte(`{"topic":"/x/storageAccounts/a","subject":"/blobServices/default/containers/input/blobs/a.mp4","eventType":"Microsoft.Storage.BlobCreated","data":{"eTag":"0x1","contentLength":1}}`))
	f.Add([]byte(`[{"source":"s","type":"t","specversion":"1.0","data":"{\"contentLength\":\"5\"}"}]`))
	f.Add([]byte(`{"data":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := ParseEvents(b)
		if err != nil {
			return
		}
		for _, e := range evs {
			if e.Size < 0 {
				t.Fatalf("negative size %d", e.Size)
			}
			if c, blob, ok := SubjectBlob(e.Subject); ok && (c == "" || blob == "" || strings.Contains(c, "/")) {
				t.Fatalf("SubjectBlob(%q) = %q, %q", e.Subject, c, blob)
			}
		}
	})
}

func FuzzDecodeValue(f *testing.F) {
	for _, s := range []string{`"\"{\\\"a\\\":1}\""`, `"{\"a\":1}"`, `{"a":1}`, `"x"`, `null`, `"\"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := decodeValue(raw)
		// Invalid UTF-8 becomes U+FFFD (3 bytes), so only valid input is
		// guaranteed not to grow.
		if err == nil && utf8.Valid(raw) && len(got) > len(raw) {
			t.Fatalf("decodeValue(%q) = %q: decoding never grows the text", raw, got)
		}
	})
}

func FuzzDecodeMessages(f *testing.F) {
	f.Add([]byte(`"[\"{\\\"v\\\":1}\",\"plain\"]"`), []byte(`"[\"id-1\",\"id-2\"]"`))
	f.Add([]byte(`"\"{\\\"v\\\":1}\""`), []byte(`"x"`))
	f.Add([]byte(`[{"v":1}]`), []byte(`[]`))
	f.Fuzz(func(t *testing.T, data, ids []byte) {
		req := InvokeRequest{Data: map[string]json.RawMessage{BindingMessages: data}, Metadata: map[string]json.RawMessage{"MessageIdArray": ids}}
		msgs, err := decodeMessages(req)
		if err == nil && len(msgs) == 0 && len(data) > 0 && data[0] != '[' && data[0] != '"' {
			t.Fatalf("no messages and no error for %q", data)
		}
	})
}
