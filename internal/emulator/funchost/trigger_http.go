package funchost

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// httpRoute is an httpTrigger's route template: literal segments, {name},
// {name?} (trailing only), {*name} (catch-all, last). Constraints such as
// {id:int} are accepted and ignored.
type httpRoute struct {
	fn       *function
	segments []routeSegment
	methods  map[string]bool // empty = any
	auth     string
}

type routeSegment struct {
	literal  string
	param    string
	optional bool
	catchAll bool
}

func newHTTPRoute(fn *function) (*httpRoute, error) {
	tmpl := fn.Trigger.Route
	if tmpl == "" {
		tmpl = fn.Name
	}
	r := &httpRoute{fn: fn, methods: map[string]bool{}, auth: strings.ToLower(fn.Trigger.AuthLevel)}
	if r.auth == "" {
		r.auth = "function"
	}
	switch r.auth {
	case "anonymous", "function", "admin", "system", "user":
	default:
		return nil, fmt.Errorf("authLevel %q: %w", fn.Trigger.AuthLevel, ErrConfig)
	}
	for _, m := range fn.Trigger.Methods {
		r.methods[strings.ToUpper(m)] = true
	}
	parts := strings.Split(strings.Trim(tmpl, "/"), "/")
	for i, p := range parts {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			name := p[1 : len(p)-1]
			seg := routeSegment{}
			if strings.HasPrefix(name, "*") {
				seg.catchAll, name = true, strings.TrimPrefix(name, "*")
				if i != len(parts)-1 {
					return nil, fmt.Errorf("route %q: catch-all must be last: %w", tmpl, ErrConfig)
				}
			}
			if before, _, ok := strings.Cut(name, ":"); ok {
				name = before
			}
			if strings.HasSuffix(name, "?") {
				seg.optional, name = true, strings.TrimSuffix(name, "?")
			}
			if name == "" {
				return nil, fmt.Errorf("route %q: empty parameter: %w", tmpl, ErrConfig)
			}
			seg.param = name
			r.segments = append(r.segments, seg)
			continue
		}
		if strings.ContainsAny(p, "{}") {
			return nil, fmt.Errorf("route %q: mixed literal and parameter segments are not modelled: %w", tmpl, ErrConfig)
		}
		r.segments = append(r.segments, routeSegment{literal: p})
	}
	for i, s := range r.segments {
		if s.optional && i != len(r.segments)-1 {
			return nil, fmt.Errorf("route %q: optional parameter must be last: %w", tmpl, ErrConfig)
		}
	}
	return r, nil
}

// match returns the route values when path (without the prefix) matches.
func (r *httpRoute) match(path string) (map[string]string, bool) {
	path = strings.Trim(path, "/")
	var parts []string
	if path != "" {
		parts = strings.Split(path, "/")
	}
	params := map[string]string{}
	for i, s := range r.segments {
		if s.catchAll {
			rest := strings.Join(parts[min(i, len(parts)):], "/")
			if rest != "" {
				params[s.param] = unescape(rest)
			}
			return params, true
		}
		if i >= len(parts) {
			return params, s.optional && i == len(parts)
		}
		if s.param != "" {
			params[s.param] = unescape(parts[i])
			continue
		}
		if !strings.EqualFold(s.literal, unescape(parts[i])) {
			return nil, false
		}
	}
	return params, len(parts) == len(r.segments)
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// serveHTTPTrigger handles a request if a route matches; it reports whether it did.
func (h *Host) serveHTTPTrigger(w http.ResponseWriter, r *http.Request) bool {
	path := r.URL.EscapedPath()
	if h.routePrefix != "" {
		pre := "/" + h.routePrefix
		if !strings.HasPrefix(strings.ToLower(path), strings.ToLower(pre)+"/") && !strings.EqualFold(path, pre) {
			return false
		}
		path = path[len(pre):]
	}
	var route *httpRoute
	var params map[string]string
	for _, rt := range h.routes {
		if p, ok := rt.match(path); ok && (len(rt.methods) == 0 || rt.methods[r.Method]) {
			route, params = rt, p
			break
		}
	}
	if route == nil {
		return false
	}
	fn := route.fn
	if !h.authorized(route, r) {
		h.log.Warn("http trigger: unauthorized", "function", fn.Name, "authLevel", route.auth)
		w.WriteHeader(http.StatusUnauthorized)
		return true
	}
	if h.forwarding && isHTTPOnly(fn) {
		h.forward(w, r)
		return true
	}
	h.invokeHTTP(w, r, fn, params)
	return true
}

func (h *Host) authorized(rt *httpRoute, r *http.Request) bool {
	k := requestKey(r)
	switch rt.auth {
	case "anonymous":
		return true
	case "function":
		want := append([]string{h.opts.Keys.Master}, h.opts.Keys.Host...)
		want = append(want, h.opts.Keys.Function[rt.fn.Name]...)
		return keyMatches(k, want...)
	default: // admin, system, user: master key only
		return keyMatches(k, h.opts.Keys.Master)
	}
}

// isHTTPOnly is the forwarding eligibility rule: exactly one httpTrigger
// input and one http output.
func isHTTPOnly(fn *function) bool {
	if len(fn.Bindings) != 2 {
		return false
	}
	_, ok := fn.httpOutput()
	return ok
}

// forward proxies the original request to the handler (enableForwardingHttpRequest).
func (h *Host) forward(w http.ResponseWriter, r *http.Request) {
	base, _, err := h.worker.endpoint(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	target, _ := url.Parse(base)
	id := newUUID()
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set("X-Azure-Functions-InvocationId", id)
			pr.Out.Header.Set("X-Azure-Functions-HostVersion", HostVersion)
			pr.Out.Header.Set("User-Agent", strings.TrimSpace(r.Header.Get("User-Agent")+" Azure-Functions-Host/"+HostVersion))
		},
		ErrorLog: nil,
	}
	rp.ServeHTTP(w, r)
}

// invokeHTTP builds the default (non-forwarding) request envelope, invokes
// the handler and writes the `http` output binding as the response.
func (h *Host) invokeHTTP(w http.ResponseWriter, r *http.Request, fn *function, params map[string]string) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	query := map[string]string{}
	for k, vs := range r.URL.Query() {
		query[k] = strings.Join(vs, ",")
	}
	headersArr := map[string][]string{}
	headersStr := map[string]string{}
	hdr := r.Header.Clone()
	hdr.Set("Host", r.Host)
	for k, vs := range hdr {
		headersArr[k] = vs
		headersStr[k] = strings.Join(vs, ",")
	}
	req := map[string]any{
		"Url":        scheme + "://" + r.Host + r.URL.RequestURI(),
		"Method":     r.Method,
		"Query":      query,
		"Headers":    headersArr,
		"Params":     params,
		"Identities": []any{},
	}
	if len(body) > 0 {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt == "application/octet-stream" || strings.HasPrefix(mt, "multipart/") {
			req["Body"] = base64.StdEncoding.EncodeToString(body)
		} else {
			req["Body"] = string(body)
		}
	}
	meta := metadata{"Query": encObject(query), "Headers": encObject(headersStr)}
	qkeys := make([]string, 0, len(query))
	for k := range query {
		qkeys = append(qkeys, k)
	}
	sort.Strings(qkeys)
	for _, k := range qkeys {
		if !strings.EqualFold(k, "code") {
			meta.set(k, encJSONText(query[k]))
		}
	}
	for k, v := range params {
		meta.set(k, encJSONText(v))
	}
	if len(body) > 0 {
		meta.applyBindingData(string(body))
	}
	data := map[string]json.RawMessage{fn.Trigger.Name: encObject(req)}
	res, err := h.invoke(r.Context(), fn, data, meta)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	out, ok := fn.httpOutput()
	var raw json.RawMessage
	if ok && out != "$return" {
		raw = lookupFold(res.Outputs, out)
	} else {
		raw = res.ReturnValue
	}
	if len(raw) == 0 || string(raw) == "null" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err := writeHTTPOutput(w, raw); err != nil {
		h.log.Error("http output binding", "function", fn.Name, "err", err)
		w.WriteHeader(http.StatusInternalServerError)
	}
}

func lookupFold(m map[string]json.RawMessage, key string) json.RawMessage {
	if v, ok := m[key]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

// writeHTTPOutput writes an HttpOutputBindingResponse {StatusCode, Status, Body, Headers}.
func writeHTTPOutput(w http.ResponseWriter, raw json.RawMessage) error {
	var resp struct {
		StatusCode json.RawMessage            `json:"StatusCode"`
		Status     json.RawMessage            `json:"Status"`
		Body       json.RawMessage            `json:"Body"`
		Headers    map[string]json.RawMessage `json:"Headers"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return fmt.Errorf("output is not in expected format: %w", err)
	}
	status := http.StatusOK
	for _, s := range []json.RawMessage{resp.StatusCode, resp.Status} {
		if len(s) == 0 || string(s) == "null" {
			continue
		}
		var str string
		if json.Unmarshal(s, &str) != nil {
			str = string(s)
		}
		n, err := strconv.Atoi(strings.TrimSpace(str))
		if err != nil || n < 100 || n > 999 {
			return fmt.Errorf("output is not in expected format: status %s", s)
		}
		status = n
		break
	}
	for k, v := range resp.Headers {
		var str string
		if json.Unmarshal(v, &str) != nil {
			str = string(v)
		}
		w.Header().Set(k, str)
	}
	var payload []byte
	if len(resp.Body) > 0 && string(resp.Body) != "null" {
		var str string
		if json.Unmarshal(resp.Body, &str) == nil {
			payload = []byte(str)
			if w.Header().Get("Content-Type") == "" {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			}
		} else {
			payload = bytes.TrimSpace(resp.Body)
			if w.Header().Get("Content-Type") == "" {
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
			}
		}
	}
	w.WriteHeader(status)
	_, _ = w.Write(payload)
	return nil
}
