package eventgrid

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
)

type hookReq struct {
	method string
	header http.Header
	body   []byte
}

// hook is a webhook endpoint that answers validations and records notifications.
type hook struct {
	srv     *httptest.Server
	reqs    chan hookReq
	mu      sync.Mutex
	respond func(hookReq) int
}

func newHook(t *testing.T) *hook {
	t.Helper()
	h := &hook{reqs: make(chan hookReq, 1000), respond: func(hookReq) int { return http.StatusOK }}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := hookReq{method: r.Method, header: r.Header.Clone(), body: b}
		h.reqs <- req
		if r.Method == http.MethodOptions {
			w.Header().Set("WebHook-Allowed-Origin", r.Header.Get("WebHook-Request-Origin"))
			return
		}
		if r.Header.Get("aeg-event-type") == "SubscriptionValidation" {
			var evs []struct {
				Data struct{ ValidationCode string }
			}
			_ = json.Unmarshal(b, &evs)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"validationResponse": evs[0].Data.ValidationCode})
			return
		}
		h.mu.Lock()
		code := h.respond(req)
		h.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) setRespond(f func(hookReq) int) {
	h.mu.Lock()
	h.respond = f
	h.mu.Unlock()
}

// next returns the next request that is not a handshake.
func (h *hook) next(t *testing.T) hookReq {
	t.Helper()
	for {
		select {
		case r := <-h.reqs:
			if r.method == http.MethodOptions || r.header.Get("aeg-event-type") == "SubscriptionValidation" {
				continue
			}
			return r
		case <-time.After(20 * time.Second):
			t.Fatal("timed out waiting for a delivery")
			return hookReq{}
		}
	}
}

// none fails if a delivery is queued right now.
func (h *hook) none(t *testing.T) {
	t.Helper()
	for {
		select {
		case r := <-h.reqs:
			if r.method == http.MethodOptions || r.header.Get("aeg-event-type") == "SubscriptionValidation" {
				continue
			}
			t.Fatalf("unexpected delivery: %s", r.body)
		default:
			return
		}
	}
}

func eventOf(t *testing.T, r hookReq) Event {
	t.Helper()
	var evs []Event
	if err := json.Unmarshal(r.body, &evs); err != nil || len(evs) != 1 {
		t.Fatalf("body %s: want an array of one event (%v)", r.body, err)
	}
	return evs[0]
}

// One Azurite serves the whole package (starting one takes seconds); each
// test gets its own containers.
var (
	azOnce sync.Once
	azSrv  *azurite.Server
	azErr  error
	azDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if azSrv != nil {
		_ = azSrv.Close()
	}
	if azDir != "" {
		_ = os.RemoveAll(azDir)
	}
	os.Exit(code)
}

func sharedAzurite(t *testing.T) *azurite.Server { return sharedAzuriteTB(t) }

func sharedAzuriteTB(t testing.TB) *azurite.Server {
	t.Helper()
	azOnce.Do(func() {
		if azDir, azErr = os.MkdirTemp("", "eventgrid-azurite-"); azErr != nil {
			return
		}
		azSrv = azurite.New(azurite.Options{Dir: azDir})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		azErr = azSrv.Start(ctx)
	})
	if azErr != nil {
		t.Fatalf("azurite: %v", azErr)
	}
	return azSrv
}

type env struct {
	az     *azurite.Server
	client *azblob.Client
	prefix string
}

var containerSeq atomic.Int64

// newEnv creates the named containers (as <name>-<n>; use e.c(name)).
func newEnv(t *testing.T, containers ...string) env {
	t.Helper()
	az := sharedAzurite(t)
	c, err := azblob.NewClientFromConnectionString(az.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := env{az: az, client: c, prefix: fmt.Sprintf("-%d", containerSeq.Add(1))}
	for _, name := range containers {
		if _, err := c.CreateContainer(context.Background(), e.c(name), nil); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// c is the real name of a test container.
func (e env) c(name string) string { return name + e.prefix }

// subject is the event subject of a blob in a test container.
func (e env) subject(container, blob string) string {
	return "/blobServices/default/containers/" + e.c(container) + "/blobs/" + blob
}

func (e env) upload(t *testing.T, container, name, content string) string {
	t.Helper()
	resp, err := e.client.UploadBuffer(context.Background(), e.c(container), name, []byte(content), nil)
	if err != nil {
		t.Fatalf("upload %s/%s: %v", container, name, err)
	}
	return strings.Trim(string(*resp.ETag), `"`)
}

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.RetryDelay == 0 {
		opts.RetryDelay = 10 * time.Millisecond
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 50 * time.Millisecond
	}
	s := New(opts)
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHandshakeAndEventShape(t *testing.T) {
	e := newEnv(t, "input", "other")
	h := newHook(t)
	s := start(t, Options{
		ConnectionString: e.az.ConnectionString(),
		Containers:       []string{e.c("input"), "missing"},
		Subscriptions: []Subscription{{Name: "ffpipe-input", Endpoint: h.srv.URL + "/hook?code=secret",
			SubjectBeginsWith: "/blobServices/default/containers/" + e.c("input") + "/", SubjectEndsWith: ".mp4"}},
		DataDir: t.TempDir(),
	})
	etag := e.upload(t, "input", "videos/a b.MP4", "not really a video")
	e.upload(t, "input", "notes.txt", "skip me")
	e.upload(t, "other", "x.mp4", "not watched")
	s.Poke()

	// The handshake comes first.
	first := <-h.reqs
	if first.header.Get("aeg-event-type") != "SubscriptionValidation" {
		t.Fatalf("first request: got aeg-event-type %q, want SubscriptionValidation", first.header.Get("aeg-event-type"))
	}
	var vev []map[string]any
	if err := json.Unmarshal(first.body, &vev); err != nil || vev[0]["eventType"] != "Microsoft.EventGrid.SubscriptionValidationEvent" {
		t.Fatalf("validation body: %s", first.body)
	}

	r := h.next(t)
	for k, want := range map[string]string{
		"aeg-event-type": "Notification", "aeg-subscription-name": "FFPIPE-INPUT", "aeg-delivery-count": "0",
		"aeg-metadata-version": "1", "Content-Type": "application/json",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("header %s: got %q, want %q", k, got, want)
		}
	}
	ev := eventOf(t, r)
	wantTopic := "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ffpipe-local/providers/Microsoft.Storage/storageAccounts/" + azurite.Account
	checks := []struct{ field, got, want string }{
		{"topic", ev.Topic, wantTopic},
		{"subject", ev.Subject, e.subject("input", "videos/a b.MP4")},
		{"eventType", ev.EventType, "Microsoft.Storage.BlobCreated"},
		{"dataVersion", ev.DataVersion, ""},
		{"metadataVersion", ev.MetadataVersion, "1"},
		{"data.api", ev.Data.API, "PutBlob"},
		{"data.eTag", ev.Data.ETag, `"` + etag + `"`},
		{"data.contentType", ev.Data.ContentType, "application/octet-stream"},
		{"data.blobType", ev.Data.BlobType, "BlockBlob"},
		{"data.url", ev.Data.URL, e.az.URL() + "/" + e.c("input") + "/videos/a%20b.MP4"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.field, c.got, c.want)
		}
	}
	if ev.Data.ContentLength != int64(len("not really a video")) {
		t.Errorf("data.contentLength: got %d", ev.Data.ContentLength)
	}
	if len(ev.Data.Sequencer) != 32 || ev.ID == "" || ev.Data.RequestID == "" || ev.Data.ClientRequestID == "" || ev.Data.StorageDiagnostics.BatchID == "" {
		t.Errorf("ids: got %+v", ev)
	}
	if _, err := time.Parse(time.RFC3339Nano, ev.EventTime); err != nil || !strings.HasSuffix(ev.EventTime, "Z") {
		t.Errorf("eventTime %q: %v", ev.EventTime, err)
	}
	// Raw field names are the real ones.
	var raw map[string]any
	_ = json.Unmarshal(bytes.Trim(r.body, "[]"), &raw)
	for _, k := range []string{"topic", "subject", "eventType", "eventTime", "id", "data", "dataVersion", "metadataVersion"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("event has no %q", k)
		}
	}
	if err := s.Scan(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivered", func() bool { return s.Stats().Pending == 0 })
	h.none(t)
	if st := s.Stats(); st.Published != 1 || st.Delivered != 1 {
		t.Errorf("Stats: got %+v, want 1 published and delivered (filters drop the rest)", st)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	e := newEnv(t, "input")
	h := newHook(t)
	n := 0
	h.setRespond(func(hookReq) int {
		n++
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusAccepted
	})
	s := start(t, Options{ConnectionString: e.az.ConnectionString(), Containers: []string{e.c("input")},
		Subscriptions: []Subscription{{Name: "s", Endpoint: h.srv.URL}}})
	e.upload(t, "input", "a.mp4", "x")
	s.Poke()
	var ids []string
	for i := range 3 {
		r := h.next(t)
		if got := r.header.Get("aeg-delivery-count"); got != string(rune('0'+i)) {
			t.Errorf("attempt %d: aeg-delivery-count got %q", i, got)
		}
		ids = append(ids, eventOf(t, r).ID)
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Errorf("retries must carry the same event id: got %v", ids)
	}
	waitFor(t, "delivered", func() bool { return s.Stats().Delivered == 1 })
	if st := s.Stats(); st.Retried != 2 || st.Pending != 0 || st.DeadLettered != 0 {
		t.Errorf("Stats: got %+v", st)
	}
}

func TestDeadLetter(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		attempts int
		reason   string
	}{
		{"400 is not retried", 400, 1, "DeliveryFailed"},
		{"500 until attempts run out", 500, 3, "MaxDeliveryAttemptsExceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "input")
			h := newHook(t)
			h.setRespond(func(hookReq) int { return tt.code })
			s := start(t, Options{ConnectionString: e.az.ConnectionString(), Containers: []string{e.c("input")},
				Subscriptions: []Subscription{{Name: "sub", Endpoint: h.srv.URL}}, DataDir: t.TempDir(), MaxDeliveryAttempts: 3})
			e.upload(t, "input", "a.mp4", "x")
			s.Poke()
			waitFor(t, "dead letter", func() bool { return s.Stats().DeadLettered == 1 })
			dl, err := s.DeadLetters("sub")
			if err != nil || len(dl) != 1 {
				t.Fatalf("DeadLetters: got %d records, %v", len(dl), err)
			}
			var rec struct {
				DeadLetterReason string
				DeliveryAttempts int
				Event            Event
			}
			if err := json.Unmarshal(dl[0], &rec); err != nil {
				t.Fatal(err)
			}
			if rec.DeadLetterReason != tt.reason || rec.DeliveryAttempts != tt.attempts || rec.Event.Subject != e.subject("input", "a.mp4") {
				t.Errorf("dead letter: got %+v, want reason %s after %d attempts", rec, tt.reason, tt.attempts)
			}
		})
	}
}

func TestRestartNoLossNoReplay(t *testing.T) {
	e := newEnv(t, "input")
	h := newHook(t)
	dir := t.TempDir()
	opts := Options{ConnectionString: e.az.ConnectionString(), Containers: []string{e.c("input")},
		Subscriptions: []Subscription{{Name: "s", Endpoint: h.srv.URL}}, DataDir: dir}

	s1 := start(t, opts)
	e.upload(t, "input", "a.mp4", "a")
	s1.Poke()
	if got := eventOf(t, h.next(t)).Subject; !strings.HasSuffix(got, "/a.mp4") {
		t.Fatalf("first delivery: got %s", got)
	}
	waitFor(t, "a delivered", func() bool { return s1.Stats().Delivered == 1 })
	// c fails while s1 runs, so it is still pending when s1 stops.
	h.setRespond(func(r hookReq) int {
		if bytes.Contains(r.body, []byte("/c.mp4")) {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	e.upload(t, "input", "c.mp4", "c")
	s1.Poke()
	h.next(t)
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	e.upload(t, "input", "b.mp4", "b") // while the stand-in is down

	h.setRespond(func(hookReq) int { return http.StatusOK })
	s2 := start(t, opts)
	got := map[string]int{}
	for range 2 {
		got[eventOf(t, h.next(t)).Subject]++
	}
	if err := s2.Scan(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all delivered", func() bool { return s2.Stats().Pending == 0 })
	for len(h.reqs) > 0 {
		r := <-h.reqs
		if r.header.Get("aeg-event-type") == "Notification" {
			got[eventOf(t, r).Subject]++
		}
	}
	want := map[string]int{e.subject("input", "b.mp4"): 1, e.subject("input", "c.mp4"): 1}
	if len(got) != len(want) || got[keys(want)[0]] != 1 || got[keys(want)[1]] != 1 {
		t.Fatalf("deliveries after restart: got %v, want %v (no replay of a.mp4, no loss of b or c)", got, want)
	}
}

func keys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	if len(out) == 2 && out[0] > out[1] {
		out[0], out[1] = out[1], out[0]
	}
	return out
}

func TestChangedETagAndUncommitted(t *testing.T) {
	e := newEnv(t, "input")
	h := newHook(t)
	s := start(t, Options{ConnectionString: e.az.ConnectionString(), Containers: []string{e.c("input")},
		Subscriptions: []Subscription{{Name: "s", Endpoint: h.srv.URL}}})
	e1 := e.upload(t, "input", "a.mp4", "one")
	s.Poke()
	if got := eventOf(t, h.next(t)).Data.ETag; got != `"`+e1+`"` {
		t.Fatalf("first eTag: got %s, want %s", got, e1)
	}
	e2 := e.upload(t, "input", "a.mp4", "two!")
	s.Poke()
	ev := eventOf(t, h.next(t))
	if ev.Data.ETag != `"`+e2+`"` || e1 == e2 || ev.Data.ContentLength != 4 {
		t.Fatalf("overwrite: got eTag %s length %d, want %s and 4", ev.Data.ETag, ev.Data.ContentLength, e2)
	}

	// A blob whose blocks are staged but not committed raises nothing.
	bb := e.client.ServiceClient().NewContainerClient(e.c("input")).NewBlockBlobClient("big.mp4")
	id := base64.StdEncoding.EncodeToString([]byte("block-0001"))
	if _, err := bb.StageBlock(t.Context(), id, nopCloser{strings.NewReader("part")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Scan(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "idle", func() bool { return s.Stats().Pending == 0 })
	h.none(t)
	if _, err := bb.CommitBlockList(t.Context(), []string{id}, &blockblob.CommitBlockListOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Poke()
	if got := eventOf(t, h.next(t)).Subject; got != e.subject("input", "big.mp4") {
		t.Fatalf("after commit: got %s", got)
	}
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

func TestCloudEvents(t *testing.T) {
	e := newEnv(t, "input")
	h := newHook(t)
	s := start(t, Options{ConnectionString: e.az.ConnectionString(), Containers: []string{e.c("input")},
		Subscriptions: []Subscription{{Name: "ce", Endpoint: h.srv.URL, Schema: SchemaCloudEvents}}})
	e.upload(t, "input", "a.mp4", "x")
	s.Poke()
	first := <-h.reqs
	if first.method != http.MethodOptions || first.header.Get("WebHook-Request-Origin") != "eventgrid.azure.net" {
		t.Fatalf("handshake: got %s %v", first.method, first.header)
	}
	r := h.next(t)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/cloudevents+json") {
		t.Errorf("Content-Type: got %q", ct)
	}
	var ce map[string]any
	if err := json.Unmarshal(r.body, &ce); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	for k, want := range map[string]string{"specversion": "1.0", "type": BlobCreated, "subject": e.subject("input", "a.mp4")} {
		if ce[k] != want {
			t.Errorf("%s: got %v, want %s", k, ce[k], want)
		}
	}
	if _, ok := ce["source"]; !ok {
		t.Error("no source")
	}
	if _, ok := ce["eventType"]; ok {
		t.Error("CloudEvents event has eventType")
	}
}

func TestSubscriptionMatches(t *testing.T) {
	subj := "/blobServices/default/containers/input/blobs/Videos/A.MP4"
	tests := []struct {
		sub  Subscription
		want bool
	}{
		{Subscription{}, true},
		{Subscription{SubjectBeginsWith: "/blobServices/default/containers/input/", SubjectEndsWith: ".mp4"}, true},
		{Subscription{SubjectEndsWith: ".mp4", SubjectCaseSensitive: true}, false},
		{Subscription{SubjectBeginsWith: "/blobServices/default/containers/output/"}, false},
	}
	for _, tt := range tests {
		if got := tt.sub.matches(subj); got != tt.want {
			t.Errorf("%+v: got %v, want %v", tt.sub, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Options{ConnectionString: "UseDevelopmentStorage=true", Containers: []string{"input"}, Subscriptions: []Subscription{{Name: "a", Endpoint: "http://127.0.0.1/x"}}}
	bad := []func(o *Options){
		func(o *Options) { o.ConnectionString = "" },
		func(o *Options) { o.Containers = nil },
		func(o *Options) { o.Subscriptions = nil },
		func(o *Options) { o.Subscriptions = []Subscription{{Name: "a", Endpoint: "ftp://x"}} },
		func(o *Options) {
			o.Subscriptions = []Subscription{{Name: "a", Endpoint: "http://x"}, {Name: "A", Endpoint: "http://y"}}
		},
		func(o *Options) {
			o.Subscriptions = []Subscription{{Name: "a", Endpoint: "http://x", Schema: "Custom"}}
		},
		func(o *Options) {
			o.Subscriptions = []Subscription{{Name: "a", Endpoint: "http://x", SubjectBeginsWith: "/blobServices/\xff"}}
		},
		func(o *Options) {
			o.Subscriptions = []Subscription{{Name: "a", Endpoint: "http://x", SubjectEndsWith: "\xe6\x97"}}
		},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for i, f := range bad {
		o := ok
		o.Subscriptions = append([]Subscription(nil), ok.Subscriptions...)
		f(&o)
		if err := o.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("case %d: got %v, want ErrConfig", i, err)
		}
	}
	if got := redact("https://h/x?code=abc&sig=def"); strings.Contains(got, "abc") || strings.Contains(got, "def") {
		t.Errorf("redact: got %s", got)
	}
}

func TestCloseNoGoroutineLeak(t *testing.T) {
	e := newEnv(t, "input")
	h := newHook(t)
	h.setRespond(func(hookReq) int { return http.StatusInternalServerError }) // keeps retries scheduled
	before := runtime.NumGoroutine()
	s := New(Options{ConnectionString: e.az.ConnectionString(), Containers: []string{e.c("input")},
		Subscriptions: []Subscription{{Name: "s", Endpoint: h.srv.URL}}, RetryDelay: time.Hour, PollInterval: 10 * time.Millisecond})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.upload(t, "input", "a.mp4", "x")
	waitFor(t, "a failed attempt", func() bool { return s.Stats().Retried == 1 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.http.CloseIdleConnections()
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}
