package funchost

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const egFunction = `{"bindings":[{"type":"eventGridTrigger","direction":"in","name":"event"}]}`

const blobCreated = `{
 "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
 "subject": "/blobServices/default/containers/input/blobs/a.mp4",
 "eventType": "Microsoft.Storage.BlobCreated",
 "eventTime": "2026-03-01T09:12:33.1234567Z",
 "id": "831e1650-001e-001b-66ab-eeb76e069631",
 "data": {"api": "PutBlob", "eTag": "\"0x8DC4BCC2E4835CD\"", "contentLength": 524288, "url": "http://127.0.0.1/devstoreaccount1/input/a.mp4"},
 "dataVersion": "",
 "metadataVersion": "1"}`

func post(t *testing.T, url string, hdr map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	must(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEventGridWebhook(t *testing.T) {
	c := newControl(t)
	dir := app{functions: map[string]string{"OnBlobCreated": egFunction}}.write(t)
	h := startHost(t, dir, c, Options{})
	hook := h.URL() + "/runtime/webhooks/EventGrid?functionName=OnBlobCreated"

	t.Run("validation", func(t *testing.T) {
		code, body := post(t, hook, map[string]string{"aeg-event-type": "SubscriptionValidation"},
			`[{"id":"1","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","data":{"validationCode":"abc-123","validationUrl":"https://x"}}]`)
		if code != 200 {
			t.Fatalf("status: got %d, want 200", code)
		}
		var v struct{ ValidationResponse string }
		must(t, json.Unmarshal([]byte(body), &v))
		if v.ValidationResponse != "abc-123" {
			t.Fatalf("validationResponse: got %q, want abc-123", v.ValidationResponse)
		}
	})

	t.Run("notification", func(t *testing.T) {
		code, _ := post(t, hook, map[string]string{"aeg-event-type": "Notification", "Content-Type": "application/json"}, "["+blobCreated+"]")
		if code != 202 {
			t.Fatalf("status: got %d, want 202", code)
		}
		cl := c.next(t)
		if cl.Path != "/OnBlobCreated" || cl.Method != "POST" {
			t.Fatalf("request: got %s %s, want POST /OnBlobCreated", cl.Method, cl.Path)
		}
		for k, want := range map[string]string{"Content-Type": "application/json; charset=utf-8", "User-Agent": "Azure-Functions-Host/" + HostVersion, "X-Azure-Functions-Hostversion": HostVersion} {
			if got := cl.Headers.Get(k); got != want {
				t.Errorf("header %s: got %q, want %q", k, got, want)
			}
		}
		if cl.Headers.Get("X-Azure-Functions-InvocationId") == "" {
			t.Error("no X-Azure-Functions-InvocationId")
		}
		data, meta := cl.envelope(t)
		text := unwrap(t, data["event"])
		if !strings.HasPrefix(text, "{\n  \"topic\": ") {
			t.Errorf("event text is not indented JSON: %q", text)
		}
		var ev map[string]any
		must(t, json.Unmarshal([]byte(text), &ev))
		if ev["subject"] != "/blobServices/default/containers/input/blobs/a.mp4" {
			t.Errorf("event subject: got %v", ev["subject"])
		}
		if got := unwrap(t, meta["subject"]); got != "/blobServices/default/containers/input/blobs/a.mp4" {
			t.Errorf("Metadata.subject: got %q", got)
		}
		if got := unwrap(t, meta["eventTime"]); got != "03/01/2026 09:12:33" {
			t.Errorf("Metadata.eventTime: got %q, want the Json.NET DateTime rendering", got)
		}
		var d map[string]any
		must(t, json.Unmarshal(meta["data"], &d))
		if d["api"] != "PutBlob" {
			t.Errorf("Metadata.data: got %s", meta["data"])
		}
		var sys struct{ MethodName, UtcNow, RandGuid string }
		must(t, json.Unmarshal(meta["sys"], &sys))
		if sys.MethodName != "OnBlobCreated" || sys.RandGuid == "" || !strings.HasSuffix(sys.UtcNow, "Z") {
			t.Errorf("sys: got %+v", sys)
		}
	})

	t.Run("single object body and failure is 500", func(t *testing.T) {
		c.setReply(func(call) reply { return reply{status: 500, body: "boom"} })
		defer c.setReply(func(call) reply { return okReply })
		code, _ := post(t, hook, map[string]string{"aeg-event-type": "Notification"}, blobCreated)
		if code != 500 {
			t.Fatalf("status: got %d, want 500", code)
		}
		c.next(t)
	})

	t.Run("one of two fails", func(t *testing.T) {
		c.setReply(func(cl call) reply {
			if strings.Contains(cl.Body, "bad.mp4") {
				return reply{status: 200, body: "not json", ctype: "text/plain"}
			}
			return okReply
		})
		defer c.setReply(func(call) reply { return okReply })
		second := strings.ReplaceAll(blobCreated, "a.mp4", "bad.mp4")
		code, _ := post(t, hook, map[string]string{"aeg-event-type": "Notification"}, "["+blobCreated+","+second+"]")
		if code != 500 {
			t.Fatalf("status: got %d, want 500", code)
		}
		c.next(t)
		c.next(t)
	})

	for _, tt := range []struct {
		name, url string
		hdr       map[string]string
		want      int
	}{
		{"missing header", hook, nil, 400},
		{"unknown header", hook, map[string]string{"aeg-event-type": "Bogus"}, 400},
		{"unsubscribe", hook, map[string]string{"aeg-event-type": "Unsubscribe"}, 202},
		{"unknown function", h.URL() + "/runtime/webhooks/eventgrid?functionName=Nope", map[string]string{"aeg-event-type": "Notification"}, 404},
		{"blob webhook not modelled", h.URL() + "/runtime/webhooks/blobs?functionName=Host.Functions.X", nil, 501},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, _ := post(t, tt.url, tt.hdr, "[]"); code != tt.want {
				t.Fatalf("status: got %d, want %d", code, tt.want)
			}
		})
	}

	t.Run("cloudevents options handshake", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodOptions, hook, nil)
		req.Header.Set("WebHook-Request-Origin", "eventgrid.azure.net")
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("WebHook-Allowed-Origin") != "eventgrid.azure.net" {
			t.Fatalf("got %d %q, want 200 eventgrid.azure.net", resp.StatusCode, resp.Header.Get("WebHook-Allowed-Origin"))
		}
	})

	if st := h.Stats()["OnBlobCreated"]; st.Invocations != 4 || st.Failed != 2 || st.Succeeded != 2 {
		t.Errorf("Stats: got %+v, want 4 invocations, 2 failed", st)
	}
}

func TestEventGridSystemKey(t *testing.T) {
	c := newControl(t)
	dir := app{functions: map[string]string{"OnBlobCreated": egFunction}}.write(t)
	h := startHost(t, dir, c, Options{Keys: Keys{System: map[string]string{"eventgrid_extension": "sys-key"}}})
	hdr := map[string]string{"aeg-event-type": "Unsubscribe"}
	if code, _ := post(t, h.URL()+"/runtime/webhooks/eventgrid?functionName=OnBlobCreated", hdr, "[]"); code != 401 {
		t.Fatalf("without key: got %d, want 401", code)
	}
	if code, _ := post(t, h.EventGridWebhookURL("OnBlobCreated"), hdr, "[]"); code != 202 {
		t.Fatalf("with key: got %d, want 202", code)
	}
}

func TestHTTPTrigger(t *testing.T) {
	c := newControl(t)
	dir := app{
		hostJSON: `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}},"extensions":{"http":{"routePrefix":"api"}}}`,
		functions: map[string]string{
			"Status": `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"function","methods":["get","post"],"route":"status/{key?}"},{"type":"http","direction":"out","name":"res"}]}`,
			"Open":   `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous"},{"type":"http","direction":"out","name":"$return"}]}`,
			"Admin":  `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"admin"},{"type":"http","direction":"out","name":"res"}]}`,
		},
	}.write(t)
	h := startHost(t, dir, c, Options{Keys: Keys{Function: map[string][]string{"Status": {"fn-key"}}}})
	c.setReply(func(cl call) reply {
		switch cl.Path {
		case "/Open":
			return reply{status: 200, body: `{"ReturnValue":{"statusCode":"201","body":"made"}}`}
		default:
			return reply{status: 200, body: `{"Outputs":{"res":{"statusCode":202,"body":{"ok":true},"headers":{"X-Test":"yes"}}}}`}
		}
	})
	get := func(url string, hdr map[string]string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	tests := []struct {
		name, path string
		hdr        map[string]string
		want       int
	}{
		{"function level without key is refused", "/api/status/abc", nil, 401},
		{"wrong key is refused", "/api/status/abc?code=nope", nil, 401},
		{"function key in query", "/api/status/abc?code=fn-key", nil, 202},
		{"function key in header", "/api/status", map[string]string{"x-functions-key": "fn-key"}, 202},
		{"master key works for function level", "/api/status?code=" + h.MasterKey(), nil, 202},
		{"admin refuses function key", "/api/Admin?code=fn-key", nil, 401},
		{"admin with master key", "/api/admin?code=" + h.MasterKey(), nil, 202},
		{"anonymous", "/api/Open", nil, 201},
		{"no such route", "/api/nope", nil, 404},
		{"too many segments", "/api/status/a/b?code=fn-key", nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := get(h.URL()+tt.path, tt.hdr)
			if resp.StatusCode != tt.want {
				t.Fatalf("GET %s: got %d, want %d", tt.path, resp.StatusCode, tt.want)
			}
		})
	}
	// Drain and inspect one invocation in detail.
	for len(c.calls) > 0 {
		<-c.calls
	}
	t.Run("payload", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, h.URL()+"/api/status/k1?code=fn-key&dryRun=true", strings.NewReader(`{"id":1005,"name":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 202 || string(b) != `{"ok":true}` || resp.Header.Get("X-Test") != "yes" {
			t.Fatalf("response: got %d %q X-Test=%q", resp.StatusCode, b, resp.Header.Get("X-Test"))
		}
		cl := c.next(t)
		if cl.Path != "/Status" {
			t.Fatalf("path: got %s, want /Status", cl.Path)
		}
		data, meta := cl.envelope(t)
		var r struct {
			URL        string `json:"Url"`
			Method     string
			Query      map[string]string
			Headers    map[string][]string
			Params     map[string]string
			Identities []any
			Body       string
		}
		must(t, json.Unmarshal(data["req"], &r))
		if r.Method != "POST" || r.Params["key"] != "k1" || r.Query["dryRun"] != "true" || r.Body != `{"id":1005,"name":"x"}` ||
			!strings.HasSuffix(r.URL, "/api/status/k1?code=fn-key&dryRun=true") || r.Headers["Content-Type"][0] != "application/json" || r.Identities == nil {
			t.Fatalf("Data.req: got %+v", r)
		}
		if got := unwrap(t, meta["dryRun"]); got != "true" {
			t.Errorf("Metadata.dryRun: got %q", got)
		}
		if _, ok := meta["code"]; ok {
			t.Error("Metadata has code")
		}
		if got := unwrap(t, meta["key"]); got != "k1" {
			t.Errorf("Metadata.key: got %q", got)
		}
		if got := unwrap(t, meta["id"]); got != "1005" {
			t.Errorf("Metadata.id: got %q, want 1005", got)
		}
		var hs map[string]string
		must(t, json.Unmarshal(meta["Headers"], &hs))
		if hs["Content-Type"] != "application/json" {
			t.Errorf("Metadata.Headers: got %v", hs)
		}
	})
	t.Run("handler failure is 500", func(t *testing.T) {
		c.setReply(func(call) reply { return reply{status: 400, body: `{}`} })
		resp, _ := get(h.URL()+"/api/Open", nil)
		if resp.StatusCode != 500 {
			t.Fatalf("got %d, want 500", resp.StatusCode)
		}
	})
}

func TestRouteMatch(t *testing.T) {
	tests := []struct {
		route, path string
		want        map[string]string // nil = no match
	}{
		{"orders/{id?}", "/orders", map[string]string{}},
		{"orders/{id?}", "/orders/7", map[string]string{"id": "7"}},
		{"orders/{id?}", "/ORDERS/7", map[string]string{"id": "7"}},
		{"orders/{id}", "/orders", nil},
		{"orders/{id:int}/items/{item}", "/orders/3/items/a%20b", map[string]string{"id": "3", "item": "a b"}},
		{"files/{*rest}", "/files/a/b/c", map[string]string{"rest": "a/b/c"}},
		{"files/{*rest}", "/files", map[string]string{}},
		{"orders", "/orders/7", nil},
		{"orders", "/other", nil},
	}
	for _, tt := range tests {
		r, err := newHTTPRoute(&function{Name: "F", Trigger: binding{Route: tt.route}})
		must(t, err)
		got, ok := r.match(tt.path)
		if ok != (tt.want != nil) {
			t.Errorf("%s on %s: matched %v, want %v", tt.route, tt.path, ok, tt.want != nil)
			continue
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("%s on %s: param %s got %q, want %q", tt.route, tt.path, k, got[k], v)
			}
		}
	}
}

func TestHandlerProcess(t *testing.T) {
	c := newControl(t)
	dir := app{
		hostJSON: `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler","workingDirectory":"wd","arguments":["--queue=%FFPIPE_QUEUE%","%UNSET_SETTING%","plain"]}}}`,
		functions: map[string]string{
			"Open":     `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous"},{"type":"http","direction":"out","name":"res"}]}`,
			"Disabled": egFunction,
			"Broken":   `{"bindings":[{"type":"queueTrigger","direction":"in","name":"q"}]}`,
		},
		values: map[string]string{"FFPIPE_QUEUE": "from-file", "AppFromFile": "1", "AzureWebJobs.Disabled.Disabled": "true"},
	}.write(t)
	must(t, os.Mkdir(filepath.Join(dir, "wd"), 0o755))
	h := startHost(t, dir, c, Options{Settings: map[string]string{"FFPIPE_QUEUE": "override", "AppOverride": "2"}})
	resp, err := http.Get(h.URL() + "/api/Open")
	must(t, err)
	resp.Body.Close()
	cl := c.next(t)
	if got := strings.Join(cl.Args, " "); got != "--queue=override plain" {
		t.Errorf("args: got %q, want %q", got, "--queue=override plain")
	}
	for k, want := range map[string]string{"AppFromFile": "1", "AppOverride": "2", "FUNCTIONS_CUSTOMHANDLER_PORT": cl.Env["FUNCTIONS_HTTPWORKER_PORT"]} {
		if cl.Env[k] != want || want == "" {
			t.Errorf("env %s: got %q, want %q", k, cl.Env[k], want)
		}
	}
	abs, _ := filepath.EvalSymlinks(dir)
	if got, _ := filepath.EvalSymlinks(cl.Env["FUNCTIONS_APP_ROOT_PATH"]); got != abs {
		t.Errorf("FUNCTIONS_APP_ROOT_PATH: got %q, want %q", got, abs)
	}
	if got, _ := filepath.EvalSymlinks(cl.Env["PWD"]); got != filepath.Join(abs, "wd") {
		t.Errorf("working directory: got %q, want %q", got, filepath.Join(abs, "wd"))
	}
	if cl.Env["FUNCTIONS_CUSTOMHANDLER_WORKER_ID"] == "" {
		t.Error("no FUNCTIONS_CUSTOMHANDLER_WORKER_ID")
	}
	if code, _ := post(t, h.URL()+"/runtime/webhooks/eventgrid?functionName=Disabled", map[string]string{"aeg-event-type": "Unsubscribe"}, "[]"); code != 404 {
		t.Errorf("disabled function: got %d, want 404", code)
	}
	if err := h.LoadErrors()["Broken"]; !errors.Is(err, ErrConfig) {
		t.Errorf("unsupported trigger: got %v, want ErrConfig", err)
	}
}

func TestHandlerCrashRestart(t *testing.T) {
	c := newControl(t)
	dir := app{functions: map[string]string{"OnBlobCreated": egFunction}}.write(t)
	h := startHost(t, dir, c, Options{RestartBackoff: 10 * time.Millisecond})
	pid := h.HandlerPid()
	if pid == 0 {
		t.Fatal("HandlerPid: got 0")
	}
	hook := h.URL() + "/runtime/webhooks/eventgrid?functionName=OnBlobCreated"
	notify := map[string]string{"aeg-event-type": "Notification"}

	c.setReply(func(call) reply { return reply{exit: true} })
	if code, _ := post(t, hook, notify, blobCreated); code != 500 {
		t.Fatalf("invocation that kills the handler: got %d, want 500", code)
	}
	c.next(t)
	c.setReply(func(call) reply { return okReply })
	// Once the host has seen the exit (the pid is gone; an invocation
	// before that still reaches the dying process and fails, as with the
	// real host), the next invocation waits for the restarted handler.
	waitFor(t, "the host to see the handler exit", func() bool { return h.HandlerPid() != pid })
	if code, _ := post(t, hook, notify, blobCreated); code != 202 {
		t.Fatalf("invocation after crash: got %d, want 202", code)
	}
	if cl := c.next(t); cl.Pid == pid {
		t.Fatalf("handler pid after restart: got %d, want a new process", cl.Pid)
	}
	if got := h.HandlerRestarts(); got != 1 {
		t.Errorf("HandlerRestarts: got %d, want 1", got)
	}

	// Killing it from outside is recovered too.
	pid = h.HandlerPid()
	p, err := os.FindProcess(pid)
	must(t, err)
	must(t, p.Kill())
	waitFor(t, "a new handler pid", func() bool { n := h.HandlerPid(); return n != 0 && n != pid })
	if code, _ := post(t, hook, notify, blobCreated); code != 202 {
		t.Fatalf("invocation after kill: got %d, want 202", code)
	}
}

func TestHandlerRestartLimit(t *testing.T) {
	c := newControl(t)
	dir := app{functions: map[string]string{"OnBlobCreated": egFunction}}.write(t)
	h := New(Options{AppDir: dir, Logger: testLogger(t), RestartLimit: 2, RestartBackoff: time.Millisecond,
		Settings: map[string]string{"TEST_CONTROL_URL": c.srv.URL, "TEST_EXIT_AT_START": "1"}})
	defer h.Close()
	err := h.Start(t.Context())
	if !errors.Is(err, ErrHandlerStopped) {
		t.Fatalf("Start with a handler that always exits: got %v, want ErrHandlerStopped", err)
	}
}

func TestLoadHostJSONOverrides(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "host.json"), []byte(`{"customHandler":{"description":{"defaultExecutablePath":"handler"}},"extensions":{"serviceBus":{"maxConcurrentCalls":16}}}`), 0o644))
	hc, err := loadHostJSON(dir, map[string]string{
		"AzureFunctionsJobHost__extensions__serviceBus__maxConcurrentCalls":         "4",
		"AzureFunctionsJobHost__customHandler__description__defaultExecutablePath":  "other",
		"AzureFunctionsJobHost__extensions__serviceBus__maxAutoLockRenewalDuration": "00:01:00",
		"NotAnOverride__extensions__serviceBus__maxMessageBatchSize":                "9",
	})
	must(t, err)
	if hc.Extensions.ServiceBus.MaxConcurrentCalls != 4 || hc.CustomHandler.Description.DefaultExecutablePath != "other" ||
		hc.Extensions.ServiceBus.MaxAutoLockRenewalDuration != "00:01:00" || hc.Extensions.ServiceBus.MaxMessageBatchSize != 0 {
		t.Fatalf("got %+v", hc)
	}
}

func TestParseTimeSpan(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"00:05:00": 5 * time.Minute, "1.00:00:00": 24 * time.Hour, "00:00:00.5": 500 * time.Millisecond, "-1": 0, "02:03:04": 2*time.Hour + 3*time.Minute + 4*time.Second,
	} {
		got, err := parseTimeSpan(in)
		if err != nil || got != want {
			t.Errorf("parseTimeSpan(%q): got %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"5m", "00:60:00", "x:00:00", ""} {
		if _, err := parseTimeSpan(in); err == nil {
			t.Errorf("parseTimeSpan(%q): got nil error", in)
		}
	}
}
