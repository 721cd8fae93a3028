package funchost

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
)

// knownOrigins are the WebHook-Request-Origin values the extension echoes.
var knownOrigins = []string{"eventgrid.azure.net", "eventgrid.azure.us", "eventgrid.azure.cn"}

// serveEventGrid is POST /runtime/webhooks/eventgrid?functionName=X, the
// Event Grid extension's webhook (docs/functions-host-protocol.md#trigger-payloads).
func (h *Host) serveEventGrid(w http.ResponseWriter, r *http.Request) {
	if k := h.opts.Keys.System["eventgrid_extension"]; k != "" {
		if !keyMatches(requestKey(r), k, h.opts.Keys.Master) {
			h.log.Warn("event grid webhook: missing or wrong system key", "status", http.StatusUnauthorized)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	// The extension keeps its listeners in a case-sensitive dictionary:
	// functionName must match the function's folder name exactly.
	name := r.URL.Query().Get("functionName")
	fn := h.functions[strings.ToLower(name)]
	if fn == nil || fn.Name != name || fn.triggerType() != "eventgridtrigger" {
		h.log.Warn("event grid webhook: unknown function", "functionName", name)
		http.Error(w, "cannot find function: '"+name+"'", http.StatusNotFound)
		return
	}
	if r.Method == http.MethodOptions {
		allowOrigin(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// Event Grid sends aeg-event-type with every schema; without it the
	// extension answers 400, CloudEvents content type or not.
	kind := r.Header.Get("aeg-event-type")
	switch {
	case strings.EqualFold(kind, "SubscriptionValidation"):
		h.validateSubscription(w, fn, body)
	case strings.EqualFold(kind, "Notification"):
		h.notifyEventGrid(w, r, fn, body)
	case strings.EqualFold(kind, "Unsubscribe"):
		w.WriteHeader(http.StatusAccepted)
	default:
		h.log.Warn("event grid webhook: bad aeg-event-type", "value", kind)
		http.Error(w, "missing or unknown aeg-event-type header", http.StatusBadRequest)
	}
}

// allowOrigin answers the CloudEvents abuse-protection handshake (an
// OPTIONS request): a known Event Grid origin is echoed, any other gets
// the public cloud's.
func allowOrigin(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("WebHook-Request-Origin")
	allowed := "eventgrid.azure.net"
	for _, o := range knownOrigins {
		if strings.EqualFold(origin, o) {
			allowed = origin
		}
	}
	w.Header().Set("WebHook-Allowed-Origin", allowed)
	w.WriteHeader(http.StatusOK)
}

// validateSubscription answers a SubscriptionValidation event with its
// validation code, as the extension does for the Event Grid schema.
func (h *Host) validateSubscription(w http.ResponseWriter, fn *function, body []byte) {
	events, err := splitEvents(body)
	if err != nil || len(events) == 0 {
		http.Error(w, "bad validation event", http.StatusBadRequest)
		return
	}
	var ev struct {
		Data struct {
			ValidationCode string `json:"validationCode"`
		} `json:"data"`
	}
	if err := json.Unmarshal(events[0], &ev); err != nil || ev.Data.ValidationCode == "" {
		http.Error(w, "bad validation event", http.StatusBadRequest)
		return
	}
	h.log.Info("event grid subscription validated", "function", fn.Name)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(marshal(map[string]string{"validationResponse": ev.Data.ValidationCode}))
}

// notifyEventGrid invokes fn with a Notification's events and answers
// 202 once the invocations have run, 500 if one failed.
func (h *Host) notifyEventGrid(w http.ResponseWriter, r *http.Request, fn *function, body []byte) {
	events, err := splitEvents(body)
	if err != nil {
		h.log.Warn("event grid webhook: bad body", "function", fn.Name, "err", err)
		http.Error(w, "bad event body: "+err.Error(), http.StatusBadRequest)
		return
	}
	// Like the host, the invocations run to completion even when Event
	// Grid gives up waiting (30 s) and will redeliver: at least once.
	if err := h.runEventGrid(context.WithoutCancel(r.Context()), fn, events); err != nil {
		// Event Grid redelivers the whole payload.
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// splitEvents returns the events of a body that is an array or one object.
func splitEvents(body []byte) ([]json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '{' {
		if !json.Valid(body) {
			return nil, errors.New("invalid JSON")
		}
		return []json.RawMessage{body}, nil
	}
	var events []json.RawMessage
	if err := json.Unmarshal(body, &events); err != nil {
		return nil, err
	}
	for _, e := range events {
		if t := bytes.TrimSpace(e); len(t) == 0 || t[0] != '{' {
			return nil, errors.New("event is not a JSON object")
		}
	}
	return events, nil
}

// indentEvent renders an event like JToken.ToString(Formatting.Indented).
func indentEvent(ev json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Indent(&b, ev, "", "  "); err != nil {
		return string(ev)
	}
	return b.String()
}

// runEventGrid invokes the function once per event (cardinality one, all
// concurrently) or once for all (many); it returns the first failure.
func (h *Host) runEventGrid(ctx context.Context, fn *function, events []json.RawMessage) error {
	if strings.EqualFold(fn.Trigger.Cardinality, "many") {
		texts := make([]string, len(events))
		for i, ev := range events {
			texts[i] = indentEvent(ev)
		}
		data := map[string]json.RawMessage{fn.Trigger.Name: encJSONText(texts)}
		_, err := h.invoke(ctx, fn, data, metadata{})
		return err
	}
	errs := make([]error, len(events))
	var wg sync.WaitGroup
	for i, ev := range events {
		wg.Add(1)
		go func() {
			defer wg.Done()
			text := indentEvent(ev)
			meta := metadata{}
			var top struct {
				Data json.RawMessage `json:"data"`
			}
			if json.Unmarshal(ev, &top) == nil && len(top.Data) > 0 && top.Data[0] == '{' {
				meta["data"] = top.Data
			}
			meta.applyBindingData(text)
			data := map[string]json.RawMessage{fn.Trigger.Name: encJSONText(text)}
			_, errs[i] = h.invoke(ctx, fn, data, meta)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// requestKey returns the key from ?code= or the x-functions-key header.
func requestKey(r *http.Request) string {
	if k := r.Header.Get("x-functions-key"); k != "" {
		return k
	}
	return r.URL.Query().Get("code")
}

func keyMatches(got string, want ...string) bool {
	if got == "" {
		return false
	}
	for _, k := range want {
		if k != "" && subtle.ConstantTimeCompare([]byte(got), []byte(k)) == 1 {
			return true
		}
	}
	return false
}
