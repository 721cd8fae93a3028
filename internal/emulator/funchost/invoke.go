package funchost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
)

// HostVersion is the version the local host reports in
// X-Azure-Functions-HostVersion and User-Agent.
const HostVersion = "4.1040.100.0"

// Value encoders reproducing the host's GetHttpScriptInvocationContextValue
// (docs/functions-host-protocol.md#value-encoding). Each returns the JSON that goes on the wire.

// marshal is json.Marshal without HTML escaping (Json.NET does not escape <>&).
func marshal(v any) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("funchost: marshal %T: %v", v, err)) // only called with JSON-safe values
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

// encJSONText is JsonConvert.SerializeObject(v) stored as a .NET string: a JSON
// string whose content is JSON text. A Go string therefore ends up double-encoded.
func encJSONText(v any) json.RawMessage { return marshal(string(marshal(v))) }

// encObject embeds an object (JObject.FromObject).
func encObject(v any) json.RawMessage { return marshal(v) }

// encDateTime is a DateTime after DateTime.Parse(ToString()): seconds, no offset.
func encDateTime(t time.Time) json.RawMessage {
	return marshal(t.UTC().Format("2006-01-02T15:04:05"))
}

// encDateTimeOffset is a DateTimeOffset after the same round trip.
func encDateTimeOffset(t time.Time) json.RawMessage {
	return marshal(t.UTC().Format("2006-01-02T15:04:05-07:00"))
}

// Json.NET's default round-trip renderings inside serialized arrays/objects.
func netDateTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000") }
func netDateTimeOffset(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.0000000-07:00")
}
func netUtcNow(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

// metadata is the Metadata dictionary under construction. Keys compare
// case-insensitively like the host's binding-data dictionary.
type metadata map[string]json.RawMessage

func (m metadata) set(key string, v json.RawMessage) {
	for k := range m {
		if strings.EqualFold(k, key) {
			m[k] = v
			return
		}
	}
	m[key] = v
}

// finish drops null values and keys ending in "trigger", then adds sys.
func (m metadata) finish(fnName string, now time.Time) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(m)+1)
	for k, v := range m {
		if v == nil || string(v) == "null" || strings.HasSuffix(strings.ToLower(k), "trigger") {
			continue
		}
		out[k] = v
	}
	out["sys"] = marshal(map[string]string{"MethodName": fnName, "UtcNow": netUtcNow(now), "RandGuid": newUUID()})
	return out
}

var isoDate = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$`)

// applyBindingData reproduces Utility.ApplyBindingData: when a string trigger
// value looks like a JSON object, its top-level non-array properties are
// copied into the binding data (objects as objects, everything else as its
// .NET string form, double-encoded), overwriting keys case-insensitively.
func (m metadata) applyBindingData(s string) {
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, "{") || !strings.HasSuffix(t, "}") {
		return
	}
	dec := json.NewDecoder(strings.NewReader(t))
	dec.UseNumber()
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return
	}
	for k, raw := range obj {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			continue
		}
		switch raw[0] {
		case '[', 'n':
			continue
		case '{':
			m.set(k, raw)
		case '"':
			var str string
			_ = json.Unmarshal(raw, &str)
			if isoDate.MatchString(str) {
				// Json.NET parses ISO dates into DateTime; (string)JValue then
				// prints the invariant-culture form.
				if tm, err := parseLenientTime(str); err == nil {
					str = tm.UTC().Format("01/02/2006 15:04:05")
				}
			}
			m.set(k, encJSONText(str))
		case 't':
			m.set(k, encJSONText("True"))
		case 'f':
			m.set(k, encJSONText("False"))
		default:
			m.set(k, encJSONText(string(raw)))
		}
	}
}

func parseLenientTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02T15:04Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("parse time %q", s)
}

// invokeResult is HttpScriptInvocationResult; Go's decoder matches names
// case-insensitively like Json.NET.
type invokeResult struct {
	Outputs     map[string]json.RawMessage `json:"Outputs"`
	Logs        []string                   `json:"Logs"`
	ReturnValue json.RawMessage            `json:"ReturnValue"`
}

// invoke POSTs one invocation to the handler and returns its parsed result.
// Any non-2xx status, non-JSON content type, empty or unparsable body fails
// the invocation, as on the real host.
func (h *Host) invoke(ctx context.Context, fn *function, data map[string]json.RawMessage, meta metadata) (*invokeResult, error) {
	start := time.Now()
	id := newUUID()
	log := h.log.With("function", fn.Name, "invocationId", id)
	h.stats.begin(fn.Name)
	res, err := h.doInvoke(ctx, fn, id, data, meta.finish(fn.Name, start))
	h.stats.end(fn.Name, err)
	if err != nil {
		log.Error("invocation failed", "trigger", fn.Trigger.Type, "duration", time.Since(start), "err", err)
		return nil, err
	}
	for _, line := range res.Logs {
		log.Info(line, "source", "Function."+fn.Name+".User")
	}
	// A timer run that logged nothing (Sweep finding no work, every few
	// seconds locally) is not news: debug, so a person watching sees files.
	level := slog.LevelInfo
	if len(res.Logs) == 0 && fn.Trigger.Type == "timerTrigger" {
		level = slog.LevelDebug
	}
	log.Log(ctx, level, "invocation succeeded", "trigger", fn.Trigger.Type, "duration", time.Since(start))
	return res, nil
}

func (h *Host) doInvoke(ctx context.Context, fn *function, id string, data, meta map[string]json.RawMessage) (*invokeResult, error) {
	if data == nil {
		data = map[string]json.RawMessage{}
	}
	body := marshal(struct {
		Data     map[string]json.RawMessage `json:"Data"`
		Metadata map[string]json.RawMessage `json:"Metadata"`
	}{data, meta})
	resp, rb, err := h.send(ctx, fn, id, body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("invoke %s: response status code does not indicate success: %d (%s): %w",
			fn.Name, resp.StatusCode, http.StatusText(resp.StatusCode), ErrInvocation)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/json" && mt != "text/json" {
		return nil, fmt.Errorf("invoke %s: invalid HttpResponseMessage: content type %q is not JSON (set Content-Type: application/json): %w",
			fn.Name, resp.Header.Get("Content-Type"), ErrInvocation)
	}
	if len(bytes.TrimSpace(rb)) == 0 || string(bytes.TrimSpace(rb)) == "null" {
		return nil, fmt.Errorf("invoke %s: empty response body (the real host would wait until functionTimeout; return at least {}): %w",
			fn.Name, ErrInvocation)
	}
	var res invokeResult
	if err := json.Unmarshal(rb, &res); err != nil {
		return nil, fmt.Errorf("invoke %s: invalid HttpResponseMessage: %v: %w", fn.Name, err, ErrInvocation)
	}
	return &res, nil
}

// send POSTs the invocation to the current handler process, waiting for it
// while it (re)starts. functionTimeout bounds it; when it fires, the host
// restarts the whole handler process (WebScriptHostExceptionHandler →
// RestartWorkerWithInvocationIdAsync), which fails every other invocation
// still running on it with ErrHandlerRestarted.
func (h *Host) send(ctx context.Context, fn *function, id string, body []byte) (*http.Response, []byte, error) {
	tctx, cancel := context.WithTimeout(ctx, h.functionTimeout)
	defer cancel()
	for {
		base, gen, err := h.worker.endpoint(tctx)
		if err != nil {
			return nil, nil, fmt.Errorf("invoke %s: %w: %w", fn.Name, ErrInvocation, err)
		}
		req, err := http.NewRequestWithContext(tctx, http.MethodPost, base+"/"+fn.Name, bytes.NewReader(body))
		if err != nil {
			return nil, nil, fmt.Errorf("invoke %s: %w", fn.Name, err)
		}
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		req.Header.Set("X-Azure-Functions-InvocationId", id)
		req.Header.Set("X-Azure-Functions-HostVersion", HostVersion)
		req.Header.Set("User-Agent", "Azure-Functions-Host/"+HostVersion)
		resp, err := h.client.Do(req)
		if err == nil {
			var rb []byte
			rb, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				return resp, rb, nil
			}
			err = fmt.Errorf("read response: %w", err)
		}
		var op *net.OpError
		switch {
		case errors.As(err, &op) && op.Op == "dial" && tctx.Err() == nil:
			// The handler died and the restart has not been noticed yet:
			// nothing was sent, so wait for the new process and retry, as
			// invocations queue while the host restarts its worker.
			if werr := h.worker.waitChange(tctx, gen); werr != nil {
				return nil, nil, fmt.Errorf("invoke %s: %w: %w", fn.Name, ErrInvocation, err)
			}
			continue
		case errors.Is(tctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
			h.worker.restart(gen, fmt.Sprintf("function timeout: invocation %s of %s ran longer than functionTimeout %s", id, fn.Name, h.functionTimeout))
			return nil, nil, fmt.Errorf("invoke %s: %w (%s; the handler process is restarted): %w", fn.Name, ErrFunctionTimeout, h.functionTimeout, ErrInvocation)
		case h.worker.generation() != gen:
			return nil, nil, fmt.Errorf("invoke %s: %w: %v: %w", fn.Name, ErrHandlerRestarted, err, ErrInvocation)
		}
		return nil, nil, fmt.Errorf("invoke %s: %w: %w", fn.Name, ErrInvocation, err)
	}
}

func newUUID() string { return uuid.NewString() }

func formatUUID(b [16]byte) string { return uuid.UUID(b).String() }
