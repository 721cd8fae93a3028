package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// InvokeRequest is the Functions host's request for a non-HTTP-forwarded
// invocation: trigger and input values by binding name, plus metadata.
type InvokeRequest struct {
	Data     map[string]json.RawMessage `json:"Data"`
	Metadata map[string]json.RawMessage `json:"Metadata"`
}

// InvokeResponse is the handler's answer. Outputs is keyed by output
// binding name; Logs are written by the host on success only.
type InvokeResponse struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue,omitempty"`
}

// maxInvokeBytes bounds an invocation body: a Dispatch batch of 100
// messages of at most 64 KiB each, encoded twice (an escaped quote grows
// to four bytes), fits.
const maxInvokeBytes = 64 << 20

// invocation carries one request through a function handler, collecting
// the lines that go back to the host in Logs.
type invocation struct {
	req  InvokeRequest
	id   string // X-Azure-Functions-InvocationId
	mu   sync.Mutex
	logs []string
	out  map[string]any
}

func (inv *invocation) logf(format string, args ...any) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.logs = append(inv.logs, redactf(format, args...))
}

func (inv *invocation) output(name string, v any) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.out[name] = v
}

// retryable marks a failure that a retry can fix: the handler answers 500
// so the host fails the invocation (Event Grid redelivers, Service Bus
// abandons the batch). Everything else is answered 2xx.
type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

func retry(err error) error {
	if err == nil {
		return nil
	}
	return retryable{err}
}

// serveInvocation decodes the envelope, runs fn and encodes the response.
func (a *app) serveInvocation(name string, fn func(r *http.Request, inv *invocation) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "POST only"})
			return
		}
		inv := &invocation{id: r.Header.Get("X-Azure-Functions-InvocationId"), out: map[string]any{}}
		body := http.MaxBytesReader(w, r.Body, maxInvokeBytes)
		dec := json.NewDecoder(body)
		if err := dec.Decode(&inv.req); err != nil {
			// A malformed envelope cannot get better by retrying it: answer
			// 2xx (so nothing loops) and log it as an error.
			a.log.Error("malformed invocation dropped", "function", name, "invocationId", inv.id, "err", err)
			writeJSON(w, http.StatusOK, InvokeResponse{Outputs: map[string]any{}, Logs: []string{redactf("malformed invocation dropped: %v", err)}})
			return
		}
		err := fn(r, inv)
		resp := InvokeResponse{Outputs: inv.out, Logs: inv.logs}
		if resp.Logs == nil {
			resp.Logs = []string{}
		}
		if err != nil {
			status := http.StatusInternalServerError
			a.log.Error("invocation failed", "function", name, "invocationId", inv.id, "retryable", isRetryable(err), "err", err)
			resp.Logs = append(resp.Logs, redactf("%s failed: %v", name, err))
			writeJSON(w, status, resp)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

func isRetryable(err error) bool {
	var r retryable
	return errors.As(err, &r)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{}`)
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// decodeValue returns the JSON text a Data or Metadata value carries,
// whichever way the host encoded it: a JSON object or array as is, a JSON
// string holding JSON text (single-encoded), or a JSON string holding a
// JSON string literal holding JSON text (double-encoded, what the host
// sends for string triggers). Plain strings are returned as their text.
func decodeValue(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, errors.New("value is empty")
	}
	if raw[0] != '"' {
		return raw, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("value is not a JSON string: %w", err)
	}
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, `"`) {
		var inner string
		if err := json.Unmarshal([]byte(t), &inner); err == nil {
			return []byte(inner), nil
		}
	}
	return []byte(s), nil
}

// metaString reads a string metadata value (double-encoded scalars).
func metaString(md map[string]json.RawMessage, key string) string {
	raw, ok := md[key]
	if !ok {
		return ""
	}
	b, err := decodeValue(raw)
	if err != nil {
		return ""
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		return s
	}
	return string(b)
}

// metaArray reads an <Name>Array metadata value as one raw JSON value per
// message.
func metaArray(md map[string]json.RawMessage, key string) []json.RawMessage {
	raw, ok := md[key]
	if !ok {
		return nil
	}
	b, err := decodeValue(raw)
	if err != nil {
		return nil
	}
	var out []json.RawMessage
	if json.Unmarshal(b, &out) != nil {
		return nil
	}
	return out
}

// rawString returns the string a JSON value holds, or "" for null and
// non-strings.
func rawString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}
