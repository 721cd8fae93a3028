package funchost

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The test handler is built once, on first use (not in TestMain, so fuzz
// workers do not compile it).
var (
	handlerOnce sync.Once
	handlerDir  string
	handlerBin  string
	handlerErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if handlerDir != "" {
		os.RemoveAll(handlerDir)
	}
	os.Exit(code)
}

func testHandler(t testing.TB) string {
	t.Helper()
	handlerOnce.Do(func() {
		if handlerDir, handlerErr = os.MkdirTemp("", "funchost-handler-"); handlerErr != nil {
			return
		}
		handlerBin = filepath.Join(handlerDir, "handler")
		out, err := exec.Command("go", "build", "-o", handlerBin, "./testdata/handler").CombinedOutput()
		if err != nil {
			handlerErr = fmt.Errorf("build test handler: %v\n%s", err, out)
		}
	})
	if handlerErr != nil {
		t.Fatal(handlerErr)
	}
	return handlerBin
}

// call is one invocation as the test handler forwarded it.
type call struct {
	Path    string            `json:"path"`
	Method  string            `json:"method"`
	Headers http.Header       `json:"headers"`
	Body    string            `json:"body"`
	Pid     int               `json:"pid"`
	Env     map[string]string `json:"env"`
	Args    []string          `json:"args"`
}

// envelope decodes the invocation body.
func (c call) envelope(t testing.TB) (data, meta map[string]json.RawMessage) {
	t.Helper()
	var env struct {
		Data     map[string]json.RawMessage
		Metadata map[string]json.RawMessage
	}
	if err := json.Unmarshal([]byte(c.Body), &env); err != nil {
		t.Fatalf("invocation body %q: %v", c.Body, err)
	}
	return env.Data, env.Metadata
}

// reply is what the control server tells the handler to answer.
type reply struct {
	status int
	body   string
	ctype  string
	exit   bool
	code   int  // exit code when exit is set; 0 means 7
	clean  bool // with exit: exit code 0
}

var okReply = reply{status: 200, body: `{"Logs":["hello from the handler"]}`}

// control is the test side of the test handler.
type control struct {
	srv   *httptest.Server
	calls chan call
	mu    sync.Mutex
	fn    func(call) reply
}

func newControl(t testing.TB) *control {
	t.Helper()
	c := &control{calls: make(chan call, 100), fn: func(call) reply { return okReply }}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var cl call
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &cl); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		fn := c.fn
		c.mu.Unlock()
		rep := fn(cl)
		select {
		case c.calls <- cl:
		default:
		}
		if rep.exit {
			code := rep.code
			switch {
			case rep.clean:
				code = 0
			case code == 0:
				code = 7
			}
			w.Header().Set("X-Test-Exit", fmt.Sprint(code))
		}
		ct := rep.ctype
		if ct == "" {
			ct = "application/json"
		}
		w.Header().Set("Content-Type", ct)
		if rep.status == 0 {
			rep.status = 200
		}
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, rep.body)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *control) setReply(fn func(call) reply) {
	c.mu.Lock()
	c.fn = fn
	c.mu.Unlock()
}

func (c *control) next(t testing.TB) call {
	t.Helper()
	select {
	case cl := <-c.calls:
		return cl
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for an invocation")
		return call{}
	}
}

// app writes an app root: host.json, function folders, local.settings.json,
// and a symlink "handler" to the test handler.
type app struct {
	hostJSON  string
	functions map[string]string
	values    map[string]string
}

func (a app) write(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	hj := a.hostJSON
	if hj == "" {
		hj = `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}}}`
	}
	must(t, os.WriteFile(filepath.Join(dir, "host.json"), []byte(hj), 0o644))
	for name, fj := range a.functions {
		must(t, os.MkdirAll(filepath.Join(dir, name), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, name, "function.json"), []byte(fj), 0o644))
	}
	if a.values != nil {
		raw, _ := json.Marshal(map[string]any{"IsEncrypted": false, "Values": a.values})
		must(t, os.WriteFile(filepath.Join(dir, "local.settings.json"), raw, 0o644))
	}
	must(t, os.Symlink(testHandler(t), filepath.Join(dir, "handler")))
	return dir
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// testLogger writes to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// startHost starts a Host on appDir with the control URL in its settings.
func startHost(t testing.TB, appDir string, c *control, opts Options) *Host {
	t.Helper()
	opts.AppDir = appDir
	if opts.Settings == nil {
		opts.Settings = map[string]string{}
	}
	opts.Settings["TEST_CONTROL_URL"] = c.srv.URL
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	h := New(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// unwrap decodes a double-encoded string value.
func unwrap(t testing.TB, raw json.RawMessage) string {
	t.Helper()
	var outer string
	if err := json.Unmarshal(raw, &outer); err != nil {
		t.Fatalf("value %s is not a JSON string: %v", raw, err)
	}
	var inner string
	if err := json.Unmarshal([]byte(outer), &inner); err != nil {
		t.Fatalf("value %s is not a double-encoded string: %v", raw, err)
	}
	return inner
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
