package batch_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/ffpipe/ffpipe/internal/emulator/batch"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestRouteTableCatchAll: whatever the route table does not model answers
// 501 NotImplemented with a Batch OData error body, and is logged; a known
// path with another method is not a 405.
func TestRouteTableCatchAll(t *testing.T) {
	var logs syncBuffer
	s, c := start(t, batch.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	createPool(t, c, "p", 0, 1, nil)
	createJob(t, c, "j", "p", nil)
	tests := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"unmodelled collection", "GET", "/certificates", 501, "NotImplemented"},
		{"unmodelled action", "POST", "/pools/p/stopresize", 501, "NotImplemented"},
		{"known path, other method", "PUT", "/pools/p", 501, "NotImplemented"},
		{"extra segment", "GET", "/jobs/j/tasks/t/extra", 501, "NotImplemented"},
		{"root", "GET", "/", 501, "NotImplemented"},
		{"modelled route", "GET", "/jobs/j", 200, ""},
		{"modelled route with escapes", "GET", "/jobs/%6A", 200, ""},
		{"missing entity", "GET", "/jobs/nope/tasks/t", 404, "JobNotFound"},
		{"escaped traversal in a file path", "GET", "/jobs/j/tasks/t/files/..%2F..%2Fstate.jsonl", 400, "InvalidQueryParameterValue"},
		{"account operation", "GET", "/supportedimages", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, s.URL()+tt.path+"?api-version="+batch.APIVersion, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+s.Token())
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Metadata string `json:"odata.metadata"`
				Code     string `json:"code"`
				Message  struct {
					Value string `json:"value"`
				} `json:"message"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tt.status || body.Code != tt.code {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body.Code, tt.status, tt.code)
			}
			if resp.Header.Get("request-id") == "" {
				t.Errorf("got no request-id header, want one on every reply")
			}
			if tt.status != http.StatusNotImplemented {
				return
			}
			if !strings.Contains(body.Metadata, "Container.errors/@Element") || !strings.Contains(body.Message.Value, "RequestId:") {
				t.Errorf("got body %+v, want a Batch OData error body", body)
			}
			if !strings.Contains(logs.String(), "not implemented") || !strings.Contains(logs.String(), "path="+strings.SplitN(tt.path, "?", 2)[0]) {
				t.Errorf("got logs %q, want the 501 logged with its path", logs.String())
			}
		})
	}
}
