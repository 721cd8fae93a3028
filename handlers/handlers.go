// Package handlers is the HTTP server the Azure Functions host talks to
// (the custom-handler protocol): GET / for readiness and POST /<Function>
// for each function in functions/. One file per function.
//
// The handler answers non-2xx only when a retry can fix the failure
// (storage or Service Bus unavailable, Batch throttling or server errors):
// the host then fails the invocation, so Event Grid redelivers or Service
// Bus abandons the batch. Everything that can never succeed becomes a
// status record and a 2xx answer, so no message loops forever.
package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/etags"
	"github.com/ffpipe/ffpipe/internal/failure"
	"github.com/ffpipe/ffpipe/internal/presets"
	"github.com/ffpipe/ffpipe/internal/queue"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/secret"
	"github.com/ffpipe/ffpipe/internal/storage"
)

// Function names (folder names under functions/, and URL paths) and their
// binding names (function.json "name").
const (
	FuncOnBlobCreated = "OnBlobCreated"
	FuncDispatch      = "Dispatch"
	FuncSweep         = "Sweep"
	FuncStatus        = "Status"

	BindingEvent    = "event"
	BindingMessages = "messages"
	BindingTimer    = "timer"
	BindingRequest  = "req"
	BindingResponse = "res"
)

// Functions lists the function names in a stable order.
var Functions = []string{FuncOnBlobCreated, FuncDispatch, FuncSweep, FuncStatus}

// Sender sends request messages.
type Sender interface {
	Send(ctx context.Context, m queue.Message) error
}

// Blobs is the blob storage the functions read and clean up.
type Blobs interface {
	Properties(ctx context.Context, container, name string) (storage.Props, error)
	DeleteIfMatch(ctx context.Context, container, name, etag string) error
	Move(ctx context.Context, srcContainer, srcName, srcETag, dstContainer, dstName string) error
	Tail(ctx context.Context, container, name string, n int64) ([]byte, error)
	List(ctx context.Context, container, prefix string, fn func(storage.Item) bool) error
}

// Signer produces the URLs a task uses to reach storage.
type Signer interface {
	BlobURL(container, name string) string
	ContainerURL(container string) string
	ReadURL(ctx context.Context, container, name string, ttl time.Duration) (string, error)
	ContainerWriteURL(ctx context.Context, container, name string, ttl time.Duration) (string, error)
}

// Records reads and writes status records.
type Records interface {
	Get(ctx context.Context, key string) (records.Record, error)
	Update(ctx context.Context, key string, change func(old records.Record, found bool) records.Record) (records.Record, error)
	// UpdateNew is Update for a key just read without a record (one
	// round trip fewer when none appeared since).
	UpdateNew(ctx context.Context, key string, change func(old records.Record, found bool) records.Record) (records.Record, error)
	Summarize(ctx context.Context, recent int) (records.Summary, error)
	// Expire deletes the records under a key prefix that left the
	// retention window; it returns how many.
	Expire(ctx context.Context, prefix string) (int, error)
}

// TaskSubmitter creates Batch tasks (Dispatch).
type TaskSubmitter interface {
	EnsureJob(ctx context.Context, jobID, poolID string) error
	AddTasks(ctx context.Context, jobID string, specs []batch.TaskSpec) ([]batch.AddResult, error)
}

// TaskSweeper finds and removes finished Batch tasks (Sweep).
type TaskSweeper interface {
	ListCompleted(ctx context.Context, jobID string, max int) ([]batch.CompletedTask, error)
	TaskExists(ctx context.Context, jobID, key string) (bool, error)
	DeleteTask(ctx context.Context, jobID, key string) error
}

// TaskReader tells Status what Batch knows about work in flight: Dispatch
// writes no record, the task is the record of a dispatch.
type TaskReader interface {
	Task(ctx context.Context, jobID, key string) (batch.TaskInfo, error)
	TaskCounts(ctx context.Context, jobID string) (batch.TaskCounts, error)
	// Progress reads a running task's progress from its node
	// (batch.ErrTaskFileNotFound before ffmpeg starts).
	Progress(ctx context.Context, jobID, key string, started time.Time) (batch.Progress, error)
}

var (
	_ Sender        = (*queue.Sender)(nil)
	_ Blobs         = (*storage.Client)(nil)
	_ Signer        = (*storage.Client)(nil)
	_ Records       = (*records.Store)(nil)
	_ TaskSubmitter = (*batch.Client)(nil)
	_ TaskSweeper   = (*batch.Client)(nil)
	_ TaskReader    = (*batch.Client)(nil)
)

// Deps are the clients the functions use. All are required except Log and
// Now.
type Deps struct {
	Log       *slog.Logger
	Queue     Sender
	Blobs     Blobs
	SAS       Signer
	Records   Records
	Submitter TaskSubmitter
	Sweeper   TaskSweeper
	Tasks     TaskReader
	Presets   *presets.Set
	// Profiles are the media profiles (FFPIPE_PROFILES over Presets); nil
	// means the built-in profiles over Presets.
	Profiles *presets.Profiles
	// Events publishes completion events (the FFPIPE_EVENTS_TOPIC topic);
	// nil when the topic setting is empty. Outbox keeps the events it
	// could not take; required with Events.
	Events Sender
	Outbox Outbox
	// Spend reads today's node time for FFPIPE_DAILY_BUDGET (records.Index);
	// nil checks no budget.
	Spend SpendReader
	// Now replaces time.Now (tests).
	Now func() time.Time
}

type app struct {
	cfg      config.Config
	d        Deps
	log      *slog.Logger
	now      func() time.Time
	account  string
	defaults request.Defaults

	jobMu    sync.Mutex
	jobReady bool

	// lastReconcile is when this instance last listed the inputs for
	// reconcile (zero: never, or the last one failed).
	reconcileMu   sync.Mutex
	lastReconcile time.Time

	// expireAt is the next part of the records Sweep expires.
	expireAt *expireCursor
	// events pauses publishing after a failure (completion.go).
	events eventsGate
	// budget caches today's spend (budget.go).
	budget budgetGuard
}

// Check reports what is wrong with cfg and d for New: call it first.
func Check(cfg config.Config, d Deps) error {
	_, err := build(cfg, d)
	return err
}

// New returns the custom-handler HTTP server. It panics if Check(cfg, d)
// reports an error.
func New(cfg config.Config, d Deps) http.Handler {
	a, err := build(cfg, d)
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("/"+FuncOnBlobCreated, a.serveInvocation(FuncOnBlobCreated, a.onBlobCreated))
	mux.Handle("/"+FuncDispatch, a.serveInvocation(FuncDispatch, a.dispatch))
	mux.Handle("/"+FuncSweep, a.serveInvocation(FuncSweep, a.sweep))
	mux.Handle("/"+FuncStatus, a.serveInvocation(FuncStatus, a.status))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.log.Warn("unknown route", "method", r.Method, "path", r.URL.Path)
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no function " + r.URL.Path})
	})
	return mux
}

func build(cfg config.Config, d Deps) (*app, error) {
	var errs []error
	for name, missing := range map[string]bool{
		"Queue": d.Queue == nil, "Blobs": d.Blobs == nil, "SAS": d.SAS == nil, "Records": d.Records == nil,
		"Submitter": d.Submitter == nil, "Sweeper": d.Sweeper == nil, "Tasks": d.Tasks == nil, "Presets": d.Presets == nil,
	} {
		if missing {
			errs = append(errs, fmt.Errorf("handlers: Deps.%s is required", name))
		}
	}
	if d.Events != nil && d.Outbox == nil {
		errs = append(errs, errors.New("handlers: Deps.Outbox is required with Deps.Events"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	account := cfg.StorageAccount()
	if account == "" {
		return nil, errors.New("handlers: cannot tell the storage account from DataStorage / DataStorage__blobServiceUri")
	}
	tmpl, err := request.ParseTemplate(cfg.OutputTemplate)
	if err != nil {
		return nil, fmt.Errorf("setting FFPIPE_OUTPUT_TEMPLATE: %w", err)
	}
	if d.Profiles == nil {
		if d.Profiles, err = presets.NewProfiles(d.Presets); err != nil {
			return nil, fmt.Errorf("handlers: profiles: %w", err)
		}
	}
	if err := checkProfileSettings(cfg, d.Profiles); err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, d: d, log: d.Log, now: d.Now, account: account, expireAt: newExpireCursor()}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.defaults = request.Defaults{
		Account:         account,
		Preset:          cfg.DefaultPreset,
		OutputContainer: cfg.OutputContainer,
		Template:        tmpl,
		Profile:         d.Profiles.Lookup,
		Suffixes:        cfg.AllowedSuffixes,
	}
	return a, nil
}

// checkProfileSettings checks at start-up that every profile a setting
// names exists and that every profile's outputs can be named.
func checkProfileSettings(cfg config.Config, ps *presets.Profiles) error {
	have := strings.Join(ps.Names(), ", ")
	if _, ok := ps.Get(cfg.DefaultPreset); !ok {
		return fmt.Errorf("setting FFPIPE_DEFAULT_PRESET: profile %q is not configured (have %s)", cfg.DefaultPreset, have)
	}
	for _, r := range cfg.Routes {
		if _, ok := ps.Get(r.Profile); !ok {
			return fmt.Errorf("setting FFPIPE_ROUTES: prefix %q names profile %q, which is not configured (have %s)", r.Prefix, r.Profile, have)
		}
	}
	return nil
}

// redactf formats and redacts a line for the host's Logs.
func redactf(format string, args ...any) string {
	return secret.Redact(fmt.Sprintf(format, args...))
}

// fileLog is the logger for lines about one file: key and correlation id
// on every line.
func (a *app) fileLog(function, key, correlationID string) *slog.Logger {
	return a.log.With("function", function, "key", key, "correlationId", correlationID)
}

// hasAllowedSuffix checks the blob name against FFPIPE_ALLOWED_SUFFIXES.
func (a *app) hasAllowedSuffix(name string) bool {
	lower := strings.ToLower(name)
	for _, s := range a.cfg.AllowedSuffixes {
		if strings.HasSuffix(lower, s) {
			return true
		}
	}
	return false
}

// sizeProblem returns a rejection reason for an input size, or "".
func (a *app) sizeProblem(size int64) string {
	switch {
	case size <= 0:
		return failure.Empty.With("the input blob has no content")
	case size > a.cfg.MaxInputBytes:
		return failure.TooLarge.Withf("the input is %d bytes, the limit is %d (FFPIPE_MAX_INPUT_BYTES)", size, a.cfg.MaxInputBytes)
	}
	return ""
}

// recordFrom fills a record's descriptive fields from a request.
func recordFrom(r records.Record, req request.Request) records.Record {
	r.Source = records.Blob{Container: req.Source.Container, Blob: req.Source.Blob, ETag: etags.Normalize(req.Source.ETag), Size: req.Source.Size}
	if req.Output.Container != "" || req.Output.Blob != "" {
		r.Output = records.Blob{Container: req.Output.Container, Blob: req.Output.Blob, Size: r.Output.Size}
	}
	if n := req.Named(); n != "" {
		r.Preset = n
	}
	if req.CorrelationID != "" {
		r.CorrelationID = req.CorrelationID
	}
	return r
}

func tp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// parallel runs fn for 0..n-1 with at most limit goroutines.
func parallel(n, limit int, fn func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(limit, 1))
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
}
