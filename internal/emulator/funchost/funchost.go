package funchost

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configure a Host. AppDir is required.
type Options struct {
	// AppDir is the function app root: host.json, <Function>/function.json,
	// optional local.settings.json and the handler executable.
	AppDir string
	// Settings override local.settings.json Values (and the process
	// environment) for binding expressions and the handler's environment.
	Settings map[string]string
	// ListenAddr for the host's HTTP endpoint. Default 127.0.0.1:0.
	ListenAddr string
	// Logger receives host, handler console and invocation logs. Default: discard.
	Logger *slog.Logger
	// Keys for httpTrigger authLevel function/admin and for webhooks.
	Keys Keys
	// StartTimeout bounds the handler readiness wait. Default 30 s.
	StartTimeout time.Duration
	// RestartLimit is how many times a failed handler (a crash, a nonzero
	// exit, not ready in time) is restarted before the host gives up: the
	// host's ErrorEventsThreshold of 3 means the third failure stops it, so
	// 0 means 2. Negative means never give up. A handler that exits 0 is
	// never restarted, and a restart after a functionTimeout (or exit code
	// 200) does not count.
	RestartLimit int
	// RestartWindow: a failure more than this after the previous one starts
	// the count again. Default 30 minutes.
	RestartWindow time.Duration
	// RestartBackoff is the first restart delay when RestartLimit is
	// negative (doubled per consecutive failure up to 5 s). The host itself
	// restarts at once, which is what happens with a limit. Default 100 ms.
	RestartBackoff time.Duration
	// DataDir keeps timer schedule status (the schedule monitor) across
	// restarts. Empty: in memory only.
	DataDir string
	// OpenReceiver opens a Service Bus receiver for a serviceBusTrigger.
	// Default: azservicebus with the connection setting.
	OpenReceiver func(ctx context.Context, conn Connection, entity Entity) (Receiver, error)
	// ServiceBusRetryDelay is the pause after a receive error. Default 1 s.
	ServiceBusRetryDelay time.Duration
	// DrainTimeout is how long Close lets running invocations finish before
	// cancelling them. Default 10 s.
	DrainTimeout time.Duration
}

// Keys are the function keys the host accepts. Code may be given in the
// `code` query parameter or the x-functions-key header.
type Keys struct {
	// Master (_master) is accepted for every auth level. Generated when empty.
	Master string
	// Host keys are accepted for authLevel function on every function.
	Host []string
	// Function keys by function name, accepted for authLevel function.
	Function map[string][]string
	// System keys by extension name. When System["eventgrid_extension"] is
	// set, the Event Grid webhook requires it (or the master key); when it is
	// empty the webhook is open, as under Core Tools.
	System map[string]string
}

// FunctionStats counts invocations of one function.
type FunctionStats struct {
	Invocations int64
	Succeeded   int64
	Failed      int64
	Running     int64
}

type stats struct {
	mu sync.Mutex
	m  map[string]*FunctionStats
}

func (s *stats) begin(fn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.m[fn]
	if st == nil {
		st = &FunctionStats{}
		s.m[fn] = st
	}
	st.Invocations++
	st.Running++
}

func (s *stats) end(fn string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.m[fn]
	st.Running--
	if err != nil {
		st.Failed++
	} else {
		st.Succeeded++
	}
}

// Host is a local Azure Functions host for custom handlers.
type Host struct {
	opts            Options
	log             *slog.Logger
	client          *http.Client
	stats           stats
	worker          *worker
	functionTimeout time.Duration
	routePrefix     string
	forwarding      bool
	hc              hostConfig
	settings        map[string]string // Values + overrides (not os env)
	functions       map[string]*function
	routes          []*httpRoute

	mu             sync.Mutex
	started        bool
	closed         bool
	ln             net.Listener
	srv            *http.Server
	cancelTriggers context.CancelFunc // stops receive loops and timers
	cancelInvokes  context.CancelFunc // aborts invocations still running after the drain
	cancelWorker   context.CancelFunc // stops the handler process
	invokeCtx      context.Context    // base of trigger invocations; outlives cancelTriggers
	triggers       sync.WaitGroup
	wg             sync.WaitGroup
	loadErrs       map[string]error
}

// New returns a Host that is not yet started.
func New(opts Options) *Host {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ListenAddr == "" {
		opts.ListenAddr = "127.0.0.1:0"
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if opts.RestartLimit == 0 {
		opts.RestartLimit = 2
	}
	if opts.RestartWindow <= 0 {
		opts.RestartWindow = 30 * time.Minute
	}
	if opts.RestartBackoff <= 0 {
		opts.RestartBackoff = 100 * time.Millisecond
	}
	if opts.ServiceBusRetryDelay <= 0 {
		opts.ServiceBusRetryDelay = time.Second
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	if opts.Keys.Master == "" {
		var b [32]byte
		_, _ = rand.Read(b[:])
		opts.Keys.Master = base64.RawURLEncoding.EncodeToString(b[:])
	}
	if opts.OpenReceiver == nil {
		opts.OpenReceiver = openAzureReceiver
	}
	return &Host{
		opts:     opts,
		log:      opts.Logger,
		stats:    stats{m: map[string]*FunctionStats{}},
		loadErrs: map[string]error{},
	}
}

// Start loads the app, starts the handler, waits until it is ready (bounded
// by ctx and StartTimeout), then starts the triggers. Later failures are
// logged; the host keeps running until Close.
func (h *Host) Start(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrClosed
	}
	if h.started {
		h.mu.Unlock()
		return errors.New("funchost: already started")
	}
	h.started = true
	h.mu.Unlock()

	if err := h.load(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", h.opts.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", h.opts.ListenAddr, err)
	}
	workerCtx, cancelWorker := context.WithCancel(context.Background())
	triggerCtx, cancelTriggers := context.WithCancel(context.Background())
	invokeCtx, cancelInvokes := context.WithCancel(context.Background())
	h.mu.Lock()
	h.ln = ln
	h.cancelWorker, h.cancelTriggers, h.cancelInvokes, h.invokeCtx = cancelWorker, cancelTriggers, cancelInvokes, invokeCtx
	h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	h.mu.Unlock()
	h.wg.Add(2)
	go func() { defer h.wg.Done(); _ = h.srv.Serve(ln) }()
	go func() { defer h.wg.Done(); h.worker.run(workerCtx) }()

	readyCtx, readyCancel := context.WithTimeout(ctx, h.opts.StartTimeout+time.Second)
	defer readyCancel()
	if _, _, err := h.worker.endpoint(readyCtx); err != nil {
		_ = h.Close()
		return fmt.Errorf("start handler: %w", err)
	}
	h.log.Info("functions host started", "url", h.URL(), "functions", h.functionNames())
	h.startTriggers(triggerCtx)
	return nil
}

func (h *Host) functionNames() []string {
	names := make([]string, 0, len(h.functions))
	for _, fn := range h.functions {
		names = append(names, fn.Name)
	}
	sort.Strings(names)
	return names
}

// LoadErrors returns the functions that failed to load, by name.
func (h *Host) LoadErrors() map[string]error {
	out := map[string]error{}
	for k, v := range h.loadErrs {
		out[k] = v
	}
	return out
}

// Close stops the triggers, the HTTP endpoint and the handler.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	srv := h.srv
	h.mu.Unlock()
	if srv == nil {
		return nil // never started
	}
	// Drain like the host: stop taking new work, let running invocations
	// finish (up to DrainTimeout), then stop the handler.
	h.cancelTriggers()
	drain, cancel := context.WithTimeout(context.Background(), h.opts.DrainTimeout)
	defer cancel()
	_ = srv.Shutdown(drain)
	done := make(chan struct{})
	go func() { h.triggers.Wait(); close(done) }()
	select {
	case <-done:
	case <-drain.Done():
		h.log.Warn("invocations still running after the drain timeout; cancelling them")
	}
	h.cancelInvokes()
	_ = srv.Close()
	<-done
	h.cancelWorker()
	h.wg.Wait()
	return nil
}

// URL returns the host's base URL, e.g. http://127.0.0.1:7071.
func (h *Host) URL() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ln == nil {
		return ""
	}
	return "http://" + h.ln.Addr().String()
}

// Addr returns the host's listen address.
func (h *Host) Addr() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ln == nil {
		return ""
	}
	return h.ln.Addr().String()
}

// MasterKey returns the master key (generated when Options.Keys.Master was empty).
func (h *Host) MasterKey() string { return h.opts.Keys.Master }

// HandlerPid returns the pid of the running handler, 0 while it is down.
func (h *Host) HandlerPid() int { return h.worker.currentPid() }

// RestartHandler kills the running handler with SIGKILL and starts a new
// one, as the host does after a functionTimeout or on POST
// /admin/host/restart: every invocation running on it fails with
// ErrHandlerRestarted, and the restart does not count toward RestartLimit.
// It reports false when no handler process was running.
func (h *Host) RestartHandler(reason string) bool {
	return h.worker.restart(h.worker.generation(), reason)
}

// serveRestart is POST /admin/host/restart with the master key. The host's
// HostController.Restart restarts the whole script host, whose worker is
// disposed with Process.Kill(); here only the handler process restarts
// (the triggers keep listening), with the same effect on the invocations.
func (h *Host) serveRestart(w http.ResponseWriter, r *http.Request) {
	if !keyMatches(requestKey(r), h.opts.Keys.Master) {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	restarted := h.RestartHandler("POST /admin/host/restart")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(marshal(map[string]any{"restarted": restarted}))
}

// HandlerRestarts returns how many times the handler has been restarted.
func (h *Host) HandlerRestarts() int {
	h.worker.mu.Lock()
	defer h.worker.mu.Unlock()
	return h.worker.restarts
}

// Stats returns invocation counters by function name.
func (h *Host) Stats() map[string]FunctionStats {
	h.stats.mu.Lock()
	defer h.stats.mu.Unlock()
	out := make(map[string]FunctionStats, len(h.stats.m))
	for k, v := range h.stats.m {
		out[k] = *v
	}
	return out
}

// EventGridWebhookURL returns the webhook URL Event Grid would call for fn
// (with the system key when one is configured).
func (h *Host) EventGridWebhookURL(fn string) string {
	u := h.URL() + "/runtime/webhooks/eventgrid?functionName=" + fn
	if k := h.opts.Keys.System["eventgrid_extension"]; k != "" {
		u += "&code=" + k
	}
	return u
}

// ServeHTTP routes host endpoints: Event Grid webhooks, HTTP triggers, and a
// few admin/status paths. Anything else answers 501 and is logged.
func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.ToLower(r.URL.Path)
	switch {
	case p == "/runtime/webhooks/eventgrid":
		h.serveEventGrid(w, r)
		return
	case p == "/" && r.Method == http.MethodGet && h.routePrefix != "":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, "Your Functions host (ffpipe local stand-in) is running.")
		return
	case strings.HasPrefix(p, "/admin/functions/") && r.Method == http.MethodPost:
		h.serveAdminRun(w, r)
		return
	case p == "/admin/host/restart" && r.Method == http.MethodPost:
		h.serveRestart(w, r)
		return
	case p == "/admin/host/status" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(marshal(map[string]any{"state": "Running", "version": HostVersion, "functions": h.functionNames()}))
		return
	case strings.HasPrefix(p, "/runtime/") || strings.HasPrefix(p, "/admin/"):
		h.notImplemented(w, r)
		return
	}
	if h.serveHTTPTrigger(w, r) {
		return
	}
	if h.routePrefix != "" && !strings.HasPrefix(p, "/"+strings.ToLower(h.routePrefix)+"/") {
		h.notImplemented(w, r)
		return
	}
	http.NotFound(w, r)
}

func (h *Host) notImplemented(w http.ResponseWriter, r *http.Request) {
	h.log.Warn("route not implemented by the local functions host", "method", r.Method, "path", r.URL.Path)
	http.Error(w, "not implemented by the ffpipe local functions host: "+r.Method+" "+r.URL.Path, http.StatusNotImplemented)
}

// Run invokes a non-HTTP function now, like the host's admin API
// (POST /admin/functions/<name>) but synchronously: a timerTrigger runs with
// IsPastDue false; an eventGridTrigger gets input as its event (or array).
func (h *Host) Run(ctx context.Context, name, input string) error {
	fn := h.functions[strings.ToLower(name)]
	if fn == nil {
		return fmt.Errorf("run %s: no such function: %w", name, ErrConfig)
	}
	switch fn.triggerType() {
	case "timertrigger":
		info := map[string]any{"Schedule": map[string]any{"AdjustForDST": true}, "ScheduleStatus": nil, "IsPastDue": false}
		_, err := h.invoke(ctx, fn, map[string]json.RawMessage{fn.Trigger.Name: encObject(info)}, metadata{})
		return err
	case "eventgridtrigger":
		events, err := splitEvents([]byte(input))
		if err != nil {
			return fmt.Errorf("run %s: input: %w", name, err)
		}
		return h.runEventGrid(ctx, fn, events)
	default:
		return fmt.Errorf("run %s: manual runs of %s are not modelled: %w", name, fn.Trigger.Type, ErrConfig)
	}
}

// serveAdminRun is POST /admin/functions/<name> {"input": "..."} with the
// master key: 202 at once, the invocation runs in the background.
func (h *Host) serveAdminRun(w http.ResponseWriter, r *http.Request) {
	if !keyMatches(requestKey(r), h.opts.Keys.Master) {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	name := r.URL.Path[len("/admin/functions/"):]
	fn := h.functions[strings.ToLower(name)]
	if fn == nil {
		http.NotFound(w, r)
		return
	}
	var body struct {
		Input string `json:"input"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 10<<20)).Decode(&body); err != nil && err != io.EOF {
		http.Error(w, "body must be {\"input\": \"...\"}", http.StatusBadRequest)
		return
	}
	switch fn.triggerType() {
	case "timertrigger", "eventgridtrigger":
	default:
		h.notImplemented(w, r)
		return
	}
	h.triggers.Add(1)
	go func() {
		defer h.triggers.Done()
		if err := h.Run(h.invokeCtx, fn.Name, body.Input); err != nil {
			h.log.Error("admin run failed", "function", fn.Name, "err", err)
		}
	}()
	w.WriteHeader(http.StatusAccepted)
}
