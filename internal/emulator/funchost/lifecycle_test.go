package funchost

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// TestCloseDrainsRunningInvocations: Close stops receiving but lets a
// running Service Bus invocation finish, so its message is completed.
func TestCloseDrainsRunningInvocations(t *testing.T) {
	c := newControl(t)
	fake := newFakeReceiver(time.Minute)
	dir := sbApp(t, `{}`, `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg","queueName":"q","connection":"ServiceBusConnection"}]}`)
	started, release := make(chan struct{}), make(chan struct{})
	c.setReply(func(call) reply {
		close(started)
		<-release
		return okReply
	})
	h := startHost(t, dir, c, Options{OpenReceiver: func(context.Context, Connection, Entity) (Receiver, error) { return fake, nil }})
	fake.add(sbMessage("m-1", "x", 1))
	<-started
	closed := make(chan error)
	go func() { closed <- h.Close() }()
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	comp, ab := fake.settled()
	if len(comp) != 1 || len(ab) != 0 {
		t.Fatalf("after Close: completed %v, abandoned %v; want m-1 completed", comp, ab)
	}
	if pid := h.HandlerPid(); pid != 0 {
		t.Errorf("HandlerPid after Close: got %d, want 0", pid)
	}
}

// TestNoGoroutineLeak starts and closes a host with every trigger kind.
func TestNoGoroutineLeak(t *testing.T) {
	c := newControl(t)
	fake := newFakeReceiver(time.Minute)
	dir := app{
		functions: map[string]string{
			"Tick":     `{"bindings":[{"type":"timerTrigger","direction":"in","name":"t","schedule":"* * * * * *"}]}`,
			"Dispatch": `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"m","queueName":"q","connection":"SB","cardinality":"many","dataType":"string"}]}`,
			"Open":     `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous"},{"type":"http","direction":"out","name":"res"}]}`,
			"OnBlob":   egFunction,
		},
		values: map[string]string{"SB": sbConn},
	}.write(t)
	before := runtime.NumGoroutine()
	h := New(Options{AppDir: dir, Logger: testLogger(t), Settings: map[string]string{"TEST_CONTROL_URL": c.srv.URL},
		OpenReceiver: func(context.Context, Connection, Entity) (Receiver, error) { return fake, nil }})
	must(t, h.Start(t.Context()))
	fake.add(sbMessage("m-1", "x", 1))
	waitFor(t, "invocations", func() bool { return h.Stats()["Dispatch"].Succeeded == 1 && h.Stats()["Tick"].Invocations > 0 })
	must(t, h.Close())
	waitFor(t, "goroutines to exit", func() bool {
		return runtime.NumGoroutine() <= before+1 // +1: the net/http idle-connection reaper may linger
	})
}

func TestManualRun(t *testing.T) {
	c := newControl(t)
	dir := app{functions: map[string]string{
		"Sweep":         `{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"0 0 0 1 1 *"}]}`,
		"OnBlobCreated": egFunction,
		"Open":          `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous"},{"type":"http","direction":"out","name":"res"}]}`,
	}}.write(t)
	h := startHost(t, dir, c, Options{})
	must(t, h.Run(t.Context(), "sweep", ""))
	if cl := c.next(t); cl.Path != "/Sweep" {
		t.Fatalf("Run(sweep): got %s", cl.Path)
	}
	must(t, h.Run(t.Context(), "OnBlobCreated", blobCreated))
	if cl := c.next(t); cl.Path != "/OnBlobCreated" {
		t.Fatalf("Run(OnBlobCreated): got %s", cl.Path)
	}
	if err := h.Run(t.Context(), "Open", ""); err == nil {
		t.Error("Run of an HTTP function: got nil error")
	}
	tests := []struct {
		name, path, key string
		want            int
	}{
		{"no key", "/admin/functions/Sweep", "", 401},
		{"master key", "/admin/functions/Sweep", h.MasterKey(), 202},
		{"unknown", "/admin/functions/Nope", h.MasterKey(), 404},
	}
	for _, tt := range tests {
		code, _ := post(t, h.URL()+tt.path, map[string]string{"x-functions-key": tt.key}, `{"input":""}`)
		if code != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, code, tt.want)
		}
	}
	if cl := c.next(t); cl.Path != "/Sweep" {
		t.Fatalf("admin run: got %s", cl.Path)
	}
}

func TestForwardingHTTPRequest(t *testing.T) {
	c := newControl(t)
	dir := app{
		hostJSON: `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"},"enableForwardingHttpRequest":true}}`,
		functions: map[string]string{
			"Open": `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous","route":"things/{id}"},{"type":"http","direction":"out","name":"res"}]}`,
		},
	}.write(t)
	h := startHost(t, dir, c, Options{})
	c.setReply(func(call) reply { return reply{status: 418, body: "teapot", ctype: "text/plain"} })
	code, body := post(t, h.URL()+"/api/things/7?x=1", map[string]string{"Content-Type": "text/plain"}, "raw body")
	if code != 418 || body != "teapot" {
		t.Fatalf("response: got %d %q, want the handler's 418 teapot as is", code, body)
	}
	cl := c.next(t)
	if cl.Path != "/api/things/7?x=1" || cl.Body != "raw body" || cl.Headers.Get("X-Azure-Functions-InvocationId") == "" {
		t.Fatalf("forwarded request: got %s %q %v", cl.Path, cl.Body, cl.Headers)
	}
}
