// Package chaos is the ledger-checked fault-injection harness of
// reliability-security.md §6 ("prove that nothing is lost"). It runs the
// whole local stack with the stand-ins as child processes, drops N valid
// clips and the poison set (media.PoisonSet) into the input container
// (some also submitted as queue messages), SIGKILLs components at seeded
// random times and restarts them, duplicates, delays and replays Event Grid
// deliveries, drops the Service Bus connections, overwrites a blob while it
// is processed and deletes one before dispatch. Then it stops the faults,
// drains (queue empty, no Batch task left, every ledger row resolved) and
// checks the invariants of §6.1 with Check:
//
//	lost, duplicate_outputs, unexpected_outputs, wrongly_deleted_inputs,
//	wrong_outcome, invalid_outputs (ffprobe: one mp3 stream, decoded
//	duration ±0.1 s), dlq_unresolved
//
// and reports executions per input (the Batch stand-in's "batch task
// running" log lines per task id: one per attempt), kills per component,
// dead letters by reason, drain time and any secret found in a log line.
//
// Faults and how they are made:
//
//	handler      SIGKILL of the custom handler process (the host restarts it)
//	funchost     SIGKILL of the `ffpipe emulator funchost` process and its handler
//	servicebus   SIGKILL of `ffpipe emulator servicebus` (durable log on disk)
//	batch        SIGKILL of `ffpipe emulator batch` and its task processes (node
//	             loss: running tasks are requeued by the restarted stand-in)
//	eventgrid    SIGKILL of `ffpipe emulator eventgrid` (cursor on disk)
//	azurite      SIGKILL of Azurite's node process
//	ffmpeg       SIGKILL of one running ffmpeg task process (nonzero exit: a retry)
//	sbdrop       every AMQP connection between the function app and the broker
//	             cut by a TCP proxy (the broker lives)
//	events       a proxy in front of the host's webhook delays (reorders) and
//	             duplicates deliveries while faults run, and replays a sample
//	             of all captured events after the work is done
//
// Azurite keeps blob metadata in memory and saves it every 5 s
// (LokiJS autosave), so a SIGKILL of Azurite can roll storage back by up to
// 5 s, which Azure Storage never does. The harness, being the user, checks
// its own uploads and deletes after every Azurite restart and repeats the
// ones that were rolled back (the replaced key is recorded as superseded);
// what the rollback does to the pipeline's own writes is the pipeline's to
// survive.
package chaos

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
	"github.com/ffpipe/ffpipe/internal/etags"
	"github.com/ffpipe/ffpipe/internal/queue"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/storage"
	"github.com/ffpipe/ffpipe/internal/tooling/media"
	"github.com/ffpipe/ffpipe/internal/tooling/stack"
)

// Fault names (the kill targets are stack component names plus these).
const (
	FaultHandler = "handler"
	FaultFFmpeg  = "ffmpeg"
	FaultSBDrop  = "sbdrop"
)

// AllFaults is the default fault mix: every component, the handler, a
// running ffmpeg and a Service Bus connection drop.
var AllFaults = []string{FaultHandler, stack.Host, stack.ServiceBus, stack.Batch, stack.EventGrid, stack.Azurite, FaultFFmpeg, FaultSBDrop}

// Options configure a run.
type Options struct {
	// AppDir is the packaged function app (dist/). Required.
	AppDir string
	// Exec is the ffpipe binary that runs the stand-ins. Required.
	Exec string
	// Dir holds media, stack state and logs. Default: a temporary
	// directory, removed afterwards unless Keep.
	Dir  string
	Keep bool
	// Files is the number of valid clips (besides the poison set).
	Files int
	// Kills is the number of faults injected (drawn from Faults).
	Kills int
	// Seed makes media, fault times and targets reproducible.
	Seed uint64
	// Faults to draw from. Default AllFaults.
	Faults []string
	// MinDuration/MaxDuration of the valid clips. Default 1–2 s.
	MinDuration, MaxDuration time.Duration
	// PoisonLong is the very-long poison case (media.PoisonOptions.LongDuration);
	// negative omits it. Default: omitted.
	PoisonLong time.Duration
	// NoPoison leaves the poison set out.
	NoPoison bool
	// MaxInputBytes is FFPIPE_MAX_INPUT_BYTES (and the size poison
	// cases). Default 8 MiB.
	MaxInputBytes int64
	// Slots are the Batch stand-in's task slots. Default 2.
	Slots int
	// FaultWindow is how long faults run from the first upload. Default:
	// max(30 s, 0.5 s per input).
	FaultWindow time.Duration
	// MaxRestartDelay bounds the random pause before a killed component is
	// started again. Default 3 s.
	MaxRestartDelay time.Duration
	// DrainTimeout bounds the drain. Default 4 min.
	DrainTimeout time.Duration
	// CacheDir caches generated clips across runs. Default
	// $TMPDIR/ffpipe-chaos-media.
	CacheDir string
	// Logger for the harness's own progress. Default: discard.
	Logger *slog.Logger
}

func (o *Options) fill() error {
	if o.AppDir == "" || o.Exec == "" {
		return errors.New("chaos: Options.AppDir and Options.Exec are required")
	}
	if o.Files < 0 || o.Kills < 0 {
		return fmt.Errorf("chaos: Files %d and Kills %d must not be negative", o.Files, o.Kills)
	}
	if len(o.Faults) == 0 {
		o.Faults = AllFaults
	}
	for _, f := range o.Faults {
		if !slices.Contains(AllFaults, f) {
			return fmt.Errorf("chaos: unknown fault %q (want one of %v)", f, AllFaults)
		}
	}
	if o.MinDuration <= 0 {
		o.MinDuration = time.Second
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = 2 * time.Second
	}
	if o.PoisonLong == 0 {
		o.PoisonLong = -1
	}
	if o.MaxInputBytes <= 0 {
		// Above the 20-minute poison clip (~4.5 MB), small enough that
		// the at-cap and cap+1 cases upload quickly.
		o.MaxInputBytes = 8 << 20
	}
	if o.Slots <= 0 {
		o.Slots = 2
	}
	if o.MaxRestartDelay <= 0 {
		o.MaxRestartDelay = 3 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 4 * time.Minute
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(os.TempDir(), "ffpipe-chaos-media")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Timing knobs of the stack under test (short, so a run recovers within
// minutes; see the drain bound in reliability-security.md §6.1).
const (
	lockDuration    = 10 * time.Second
	dupWindow       = 30 * time.Second
	reconcileAfter  = 30 * time.Second
	taskMaxRetries  = 2
	outputExt       = "mp3"
	replayFraction  = 0.1
	uploadParallel  = 4
	opRetryDeadline = 90 * time.Second
)

// Report is the outcome of a run; it marshals to the JSON of `ffpipe chaos --json`.
type Report struct {
	Files  int    `json:"files"`
	Poison int    `json:"poison"`
	Rows   int    `json:"rows"`
	Kills  int    `json:"kills"`
	Seed   uint64 `json:"seed"`
	Result
	// DrainSeconds runs from the last fault (the end of the fault window
	// when none was injected) until the ledger is resolved (§6.1);
	// DrainWaitSeconds is the time spent in the drain phase itself.
	DrainSeconds     float64        `json:"drain_seconds"`
	DrainWaitSeconds float64        `json:"drain_wait_seconds"`
	RunSeconds       float64        `json:"run_seconds"`
	KillsByComponent map[string]int `json:"kills_by_component"`
	Missed           map[string]int `json:"faults_missed"` // e.g. no ffmpeg running at that moment
	EventFaults      map[string]int `json:"event_faults"`  // delayed, duplicated, replayed
	// Executions maps "runs per input" to how many inputs ran that often.
	Executions    map[string]int `json:"executions"`
	ExecutionsMax int            `json:"executions_max"`
	// ExecutionsOverBound lists inputs that ran more often than
	// 1 + faults that could hit them + maxTaskRetryCount.
	ExecutionsOverBound []string         `json:"executions_over_bound,omitempty"`
	DLQByReason         map[string]int   `json:"dlq_by_reason"`
	RecoverySeconds     map[string]p5095 `json:"recovery_seconds"`
	SecretsInLogs       []string         `json:"secrets_in_logs"`
	SecurityChecks      []SecurityCheck  `json:"security_checks"`
	LogLines            int              `json:"log_lines_scanned"`
	Timeline            []FaultEvent     `json:"timeline"`
	Notes               []string         `json:"notes,omitempty"`
	Ledger              []Row            `json:"ledger,omitempty"`
	Dir                 string           `json:"dir,omitempty"`
}

// FaultEvent is one injected fault.
type FaultEvent struct {
	At     float64 `json:"at"` // seconds since the faults began
	Fault  string  `json:"fault"`
	Detail string  `json:"detail,omitempty"`
}

// p5095 are two percentiles in seconds.
type p5095 struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	N   int     `json:"n"`
}

// Failed reports whether any invariant was breached or a secret leaked.
func (r *Report) Failed() bool {
	return r.Breaches() > 0 || len(r.SecretsInLogs) > 0 || r.SecurityFailures() > 0
}

// SecurityFailures counts failed security checks.
func (r *Report) SecurityFailures() int {
	n := 0
	for _, c := range r.SecurityChecks {
		if !c.OK {
			n++
		}
	}
	return n
}

// Run executes one chaos run. The error is for a harness failure (the
// stack would not start, media could not be made); invariant breaches are
// in the Report (Failed).
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	start := time.Now()
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "ffpipe-chaos-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	if !opts.Keep {
		defer os.RemoveAll(dir)
	}
	h := &harness{opts: opts, dir: dir, log: opts.Logger,
		rng:    rand.New(rand.NewPCG(opts.Seed, 0xc4a05)),
		report: &Report{Files: opts.Files, Kills: opts.Kills, Seed: opts.Seed, KillsByComponent: map[string]int{}, Missed: map[string]int{}, EventFaults: map[string]int{}, Dir: dir},
		recov:  map[string][]time.Duration{},
	}
	if opts.Keep {
		h.report.Dir = dir
	}
	if err := h.prepareMedia(ctx); err != nil {
		return nil, err
	}
	if err := h.startStack(ctx); err != nil {
		return nil, err
	}
	defer h.close()
	if err := h.exercise(ctx); err != nil {
		return nil, err
	}
	if err := h.drain(ctx); err != nil {
		h.report.Notes = append(h.report.Notes, "drain: "+err.Error())
	}
	if err := h.observeAndCheck(ctx); err != nil {
		return nil, err
	}
	h.report.RunSeconds = time.Since(start).Seconds()
	return h.report, nil
}

type harness struct {
	opts   Options
	dir    string
	log    *slog.Logger
	report *Report

	rngMu sync.Mutex
	rng   *rand.Rand

	clips  []media.Clip
	poison []media.Case

	st      *stack.Stack
	azLog   *os.File
	sbProxy *tcpProxy
	egProxy *egProxy
	cfg     config.Config
	blob    *azblob.Client
	store   *storage.Client
	sender  *queue.Sender
	sbConn  string // direct (not proxied) connection string

	mu   sync.Mutex
	rows []*Row
	// ops remembers when the harness last wrote each row's blob, to
	// repeat what an Azurite SIGKILL rolled back.
	ops map[*Row]time.Time

	recovMu sync.Mutex
	recov   map[string][]time.Duration

	faultsStart, faultsEnd time.Time
	storageKills           []time.Time
}

func (h *harness) randIntN(n int) int {
	h.rngMu.Lock()
	defer h.rngMu.Unlock()
	return h.rng.IntN(n)
}

func (h *harness) prepareMedia(ctx context.Context) error {
	base := media.ClipSpec{CacheDir: h.opts.CacheDir}
	clips, err := media.GenerateSet(ctx, filepath.Join(h.dir, "media", "valid"), h.opts.Files, h.opts.Seed,
		media.SetOptions{Base: base, MinDuration: h.opts.MinDuration, MaxDuration: h.opts.MaxDuration, Prefix: "clip-"})
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	h.clips = clips
	if !h.opts.NoPoison {
		cases, err := media.PoisonSet(ctx, filepath.Join(h.dir, "media", "poison"), media.PoisonOptions{
			Base:          media.ClipSpec{CacheDir: h.opts.CacheDir},
			Prefix:        "poison/",
			MaxInputBytes: h.opts.MaxInputBytes,
			LongDuration:  h.opts.PoisonLong,
			OutputExt:     outputExt,
			Expect:        poisonExpectations(),
		})
		if err != nil {
			return fmt.Errorf("chaos: %w", err)
		}
		h.poison = cases
	}
	h.report.Poison = len(h.poison)
	return nil
}

// poisonExpectations adjusts media.PoisonSet's defaults where ffpipe's
// documented behaviour differs from the generic recommendation. There is
// none today: the pipeline's reasons carry the recommended codes of §6.7
// (decode_error, not_media, no_audio, bad_name, too_large, empty). An
// override here must say why; a pipeline that disagrees is a bug.
func poisonExpectations() map[string]media.Expect {
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (h *harness) startStack(ctx context.Context) error {
	sbPort, err := freePort()
	if err != nil {
		return err
	}
	h.sbProxy, err = newTCPProxy("127.0.0.1:"+strconv.Itoa(sbPort), h.log)
	if err != nil {
		return err
	}
	h.egProxy, err = newEGProxy(h.opts.Seed, h.log)
	if err != nil {
		return err
	}
	stackDir := filepath.Join(h.dir, "stack")
	if err := os.MkdirAll(filepath.Join(stackDir, "logs"), 0o755); err != nil {
		return err
	}
	azLog, err := os.OpenFile(filepath.Join(stackDir, "logs", "azurite.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	h.azLog = azLog // restarts of Azurite write to it too; closed by close()
	proxied := fmt.Sprintf("Endpoint=sb://127.0.0.1:%d;SharedAccessKeyName=%s;SharedAccessKey=%s;UseDevelopmentEmulator=true;",
		h.sbProxy.port(), servicebus.DefaultKeyName, servicebus.DefaultKey)
	h.sbConn = fmt.Sprintf("Endpoint=sb://127.0.0.1:%d;SharedAccessKeyName=%s;SharedAccessKey=%s;UseDevelopmentEmulator=true;",
		sbPort, servicebus.DefaultKeyName, servicebus.DefaultKey)
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	h.st, err = stack.Start(sctx, stack.Options{
		Dir:                      stackDir,
		AppDir:                   h.opts.AppDir,
		Exec:                     h.opts.Exec,
		Ports:                    stack.Ports{ServiceBus: sbPort},
		Slots:                    h.opts.Slots,
		LockDuration:             lockDuration,
		DuplicateDetectionWindow: dupWindow,
		Settings: map[string]string{
			"ServiceBusConnection":    proxied,
			"FFPIPE_MAX_INPUT_BYTES":  strconv.FormatInt(h.opts.MaxInputBytes, 10),
			"FFPIPE_RECONCILE_AFTER":  reconcileAfter.String(),
			"FFPIPE_TASK_MAX_RETRIES": strconv.Itoa(taskMaxRetries),
			"FFPIPE_LOG_LEVEL":        "info",
		},
		EventGridEndpoint: h.egProxy.endpoint,
		Logger:            h.log,
		AzuriteLog:        azLog,
	})
	if err != nil {
		h.sbProxy.close()
		h.egProxy.close()
		return fmt.Errorf("chaos: %w", err)
	}
	if h.cfg, err = h.st.Config(); err != nil {
		return err
	}
	if h.blob, err = h.st.Blob(); err != nil {
		return err
	}
	if h.store, err = storage.NewFromConnectionString(h.st.StorageConnectionString(), storage.Options{}); err != nil {
		return err
	}
	if h.sender, err = queue.NewFromConnectionString(h.sbConn, h.cfg.Queue); err != nil {
		return err
	}
	return nil
}

func (h *harness) close() {
	if h.sender != nil {
		ctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		_ = h.sender.Close(ctx)
		c()
	}
	if h.st != nil {
		if err := h.st.Close(); err != nil {
			h.log.Warn("close stack", "err", err)
		}
	}
	if h.egProxy != nil {
		h.egProxy.close()
	}
	if h.sbProxy != nil {
		h.sbProxy.close()
	}
	if h.azLog != nil {
		h.azLog.Close()
	}
}

// retry runs op until it succeeds or the deadline passes (components
// come and go while faults run).
func retry(ctx context.Context, what string, op func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, opRetryDeadline)
	defer cancel()
	var err error
	for attempt := 0; ; attempt++ {
		actx, c := context.WithTimeout(ctx, 15*time.Second)
		err = op(actx)
		c()
		if err == nil {
			return nil
		}
		if !waitCtx(ctx, min(time.Duration(attempt+1)*200*time.Millisecond, 2*time.Second)) {
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		}
	}
}

// item is one thing to upload.
type item struct {
	row  *Row
	path string
}

func fileSHA(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := sha256.New()
	if _, err := io.Copy(s, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(s.Sum(nil)), nil
}

// buildItems makes the ledger rows of the valid clips and the poison set.
func (h *harness) buildItems(ctx context.Context) ([]item, error) {
	// Measure every clip's audio (one ffmpeg decode each) in parallel.
	durs := make([]time.Duration, len(h.clips))
	derrs := make([]error, len(h.clips))
	sem := make(chan struct{}, max(runtime.NumCPU(), 2))
	var wg sync.WaitGroup
	for i, c := range h.clips {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			durs[i], derrs[i] = media.ExpectedAudioDuration(ctx, c.Path)
		}()
	}
	wg.Wait()
	if err := errors.Join(derrs...); err != nil {
		return nil, fmt.Errorf("chaos: measure clips: %w", err)
	}
	var items []item
	for i, c := range h.clips {
		d := durs[i]
		name := "valid/" + c.Name
		r := &Row{ID: fmt.Sprintf("valid-%04d", i), Kind: KindValid, Name: name, Duration: d,
			expect: media.Expect{Outcome: media.Done}, Output: OutputName(name, outputExt), ViaMsg: i%5 == 0}
		items = append(items, item{r, c.Path})
	}
	for _, c := range h.poison {
		r := &Row{ID: "poison-" + c.ID, Kind: KindPoison, Name: c.Name, Duration: c.AudioDuration, expect: c.Expect}
		if c.Expect.Outcome.Has(media.Done) || c.Expect.Outcome.Has(media.Failed) {
			r.Output = OutputName(c.Name, outputExt)
		}
		if c.Expect.Outcome == media.Ignored {
			r.Output = ""
		}
		items = append(items, item{r, c.Path})
	}
	for _, it := range items {
		it.row.Expect = it.row.expect.String()
		if it.row.wantState != "" {
			it.row.Expect = string(it.row.wantState)
		}
		sum, err := fileSHA(it.path)
		if err != nil {
			return nil, err
		}
		it.row.SHA256 = sum
	}
	h.rngMu.Lock()
	h.rng.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	h.rngMu.Unlock()
	return items, nil
}

// upload puts path at row.Name and fills eTag, key and size.
func (h *harness) upload(ctx context.Context, r *Row, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	h.mu.Lock()
	r.path = path
	h.mu.Unlock()
	return retry(ctx, "upload "+r.ID, func(ctx context.Context) error {
		resp, err := h.blob.ServiceClient().NewContainerClient(h.cfg.InputContainer).NewBlockBlobClient(r.Name).UploadBuffer(ctx, data, nil)
		if err != nil {
			return err
		}
		h.mu.Lock()
		if r.Key != "" {
			// An earlier attempt may have been stored after all.
			r.superseded = append(r.superseded, r.Key)
		}
		r.ETag = etags.Normalize(string(*resp.ETag))
		r.Key = request.Key(azurite.Account, h.cfg.InputContainer, r.Name, r.ETag)
		r.Size = int64(len(data))
		h.ops[r] = time.Now()
		h.mu.Unlock()
		return nil
	})
}

func (h *harness) send(ctx context.Context, id string, body []byte) error {
	return retry(ctx, "send "+id, func(ctx context.Context) error {
		return h.sender.Send(ctx, queue.Message{ID: id, CorrelationID: "chaos-" + id, Body: body})
	})
}

func (h *harness) addRow(r *Row) {
	h.mu.Lock()
	h.rows = append(h.rows, r)
	h.mu.Unlock()
}

// exercise uploads everything while the fault injector runs, then stops
// the faults and replays a sample of the captured events.
func (h *harness) exercise(ctx context.Context) error {
	h.ops = map[*Row]time.Time{}
	items, err := h.buildItems(ctx)
	if err != nil {
		return err
	}
	window := h.opts.FaultWindow
	if window <= 0 {
		window = max(30*time.Second, time.Duration(len(items))*500*time.Millisecond)
	}
	h.faultsStart = time.Now()
	h.faultsEnd = h.faultsStart.Add(window)
	fctx, stopFaults := context.WithCancel(ctx)
	defer stopFaults()
	h.egProxy.setFaults(true)
	var fwg sync.WaitGroup
	fwg.Add(1)
	go func() { defer fwg.Done(); h.injectFaults(fctx, window) }()

	// Uploads (and messages) spread over the first half of the window.
	var uwg sync.WaitGroup
	work := make(chan item)
	errs := make(chan error, uploadParallel+8)
	for w := 0; w < uploadParallel; w++ {
		uwg.Add(1)
		go func() {
			defer uwg.Done()
			for it := range work {
				if err := h.upload(ctx, it.row, it.path); err != nil {
					errs <- err
					continue
				}
				h.addRow(it.row)
				if it.row.ViaMsg {
					req := request.Request{V: request.Version, Source: request.Source{Container: h.cfg.InputContainer, Blob: it.row.Name}}
					body, err := req.Encode()
					if err == nil {
						err = h.send(ctx, it.row.Key, body)
					}
					if err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	spread := window / 2 / time.Duration(max(len(items), 1))
	uwg.Add(1)
	go func() {
		defer uwg.Done()
		defer close(work)
		for _, it := range items {
			select {
			case work <- it:
			case <-ctx.Done():
				return
			}
			if !waitCtx(ctx, spread) {
				return
			}
		}
	}()
	// Edge cases of §6.6/§6.7 that need the harness's timing.
	uwg.Add(1)
	go func() {
		defer uwg.Done()
		if err := h.edgeCases(ctx); err != nil {
			errs <- err
		}
	}()
	uwg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if err := errors.Join(all...); err != nil {
		stopFaults()
		fwg.Wait()
		return fmt.Errorf("chaos: feeding inputs: %w", err)
	}
	fwg.Wait() // the injector returns at the end of the window
	h.egProxy.setFaults(false)
	if err := h.ensureAllRunning(ctx); err != nil {
		return err
	}
	h.log.Info("faults stopped", "kills", h.report.KillsByComponent)
	return nil
}

// edgeCases: overwrite while processed, delete before dispatch, and
// messages that are not requests.
func (h *harness) edgeCases(ctx context.Context) error {
	n := max(1, h.opts.Files/20)
	var errs []error
	for i := range n {
		if err := h.overwrite(ctx, i); err != nil {
			errs = append(errs, err)
		}
		if err := h.deleteBeforeDispatch(ctx, i); err != nil {
			errs = append(errs, err)
		}
	}
	for i := range 2 {
		id := fmt.Sprintf("bad-message-%d", i)
		sum := sha256.Sum256([]byte(fmt.Sprintf("chaos-%d-%s", h.opts.Seed, id)))
		key := hex.EncodeToString(sum[:])[:request.KeyLen]
		r := &Row{ID: id, Kind: KindBadMessage, Key: key, wantState: records.StateBadRequest, Expect: string(records.StateBadRequest)}
		body := []byte(`{"v":1,"source":`) // truncated JSON
		if i == 1 {
			body = []byte(`{"v":99,"source":{"container":"input","blob":"x.mp4"}}`)
		}
		if err := h.send(ctx, key, body); err != nil {
			errs = append(errs, err)
			continue
		}
		h.addRow(r)
	}
	return errors.Join(errs...)
}

// overwrite uploads version 1 of a blob, waits until its task exists (or
// its record moves on), then uploads version 2 under the same name.
func (h *harness) overwrite(ctx context.Context, i int) error {
	specs := []media.ClipSpec{
		{CacheDir: h.opts.CacheDir, Name: fmt.Sprintf("ow-%d-v1.mp4", i), Duration: 2 * time.Second, ToneHz: 300 + i},
		{CacheDir: h.opts.CacheDir, Name: fmt.Sprintf("ow-%d-v2.mp4", i), Duration: 1 * time.Second, ToneHz: 900 + i},
	}
	name := fmt.Sprintf("overwrite/ow-%d.mp4", i)
	var rows [2]*Row
	for v, spec := range specs {
		p, err := media.Generate(ctx, filepath.Join(h.dir, "media", "edge"), spec)
		if err != nil {
			return err
		}
		d, err := media.ExpectedAudioDuration(ctx, p)
		if err != nil {
			return err
		}
		kind := KindOverwriteOld
		if v == 1 {
			kind = KindOverwriteNew
		}
		r := &Row{ID: fmt.Sprintf("overwrite-%d-v%d", i, v+1), Kind: kind, Name: name, Duration: d,
			expect: media.Expect{Outcome: media.Done}, Output: OutputName(name, outputExt)}
		r.mayBeMissing = v == 0
		r.Expect = "done"
		if v == 0 {
			r.Expect = "done|input_missing"
		}
		if sum, err := fileSHA(p); err == nil {
			r.SHA256 = sum
		}
		if err := h.upload(ctx, r, p); err != nil {
			return err
		}
		h.addRow(r)
		rows[v] = r
		if v == 0 {
			h.waitDispatched(ctx, r.Key, 20*time.Second)
		}
	}
	rows[0].Pair, rows[1].Pair = rows[1].ID, rows[0].ID
	return nil
}

// waitDispatched polls until key has a Batch task or a record past
// "queued" (or d passes). Dispatch writes no record: the task is the sign.
func (h *harness) waitDispatched(ctx context.Context, key string, d time.Duration) {
	recs := records.New(h.store, h.cfg.StatusContainer, nil)
	bc, err := h.st.BatchClient()
	if err != nil {
		return
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		rctx, c := context.WithTimeout(ctx, 5*time.Second)
		_, terr := bc.Task(rctx, h.cfg.BatchJob, key)
		rec, err := recs.Get(rctx, key)
		c()
		if terr == nil || (err == nil && rec.State != records.StateQueued) {
			return
		}
		if !waitCtx(ctx, 100*time.Millisecond) {
			return
		}
	}
}

// deleteBeforeDispatch uploads a clip, deletes it, then submits it as a
// message naming that version: Dispatch must record input_missing.
func (h *harness) deleteBeforeDispatch(ctx context.Context, i int) error {
	spec := media.ClipSpec{CacheDir: h.opts.CacheDir, Name: fmt.Sprintf("del-%d.mp4", i), Duration: time.Second, ToneHz: 1500 + i}
	p, err := media.Generate(ctx, filepath.Join(h.dir, "media", "edge"), spec)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("deleted/del-%d.mp4", i)
	r := &Row{ID: fmt.Sprintf("deleted-%d", i), Kind: KindDeleted, Name: name, wantState: records.StateInputMissing,
		Expect: string(records.StateInputMissing), ViaMsg: true, Output: OutputName(name, outputExt)}
	if err := h.upload(ctx, r, p); err != nil {
		return err
	}
	if err := h.deleteInput(ctx, r); err != nil {
		return err
	}
	h.addRow(r)
	req := request.Request{V: request.Version, Source: request.Source{Container: h.cfg.InputContainer, Blob: name, ETag: r.ETag}}
	body, err := req.Encode()
	if err != nil {
		return err
	}
	return h.send(ctx, r.Key, body)
}

func (h *harness) deleteInput(ctx context.Context, r *Row) error {
	err := retry(ctx, "delete "+r.ID, func(ctx context.Context) error {
		_, err := h.blob.DeleteBlob(ctx, h.cfg.InputContainer, r.Name, nil)
		if bloberror.HasCode(err, bloberror.BlobNotFound) {
			return nil
		}
		return err
	})
	h.mu.Lock()
	h.ops[r] = time.Now()
	h.mu.Unlock()
	return err
}

// repairRollback redoes the harness's own writes of the last rollback
// window after an Azurite SIGKILL (LokiJS saves every 5 s).
func (h *harness) repairRollback(ctx context.Context, killed time.Time) {
	// LokiJS saves every 5 s, but a SIGKILL during a save keeps the
	// previous file, and saves lag under load: look further back.
	const window = 30 * time.Second
	h.mu.Lock()
	var recent []*Row
	for r, t := range h.ops {
		if t.After(killed.Add(-window)) {
			recent = append(recent, r)
		}
	}
	h.mu.Unlock()
	for _, r := range recent {
		var props storage.Props
		err := retry(ctx, "check "+r.ID, func(ctx context.Context) error {
			var err error
			props, err = h.store.Properties(ctx, h.cfg.InputContainer, r.Name)
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			return err
		})
		if err != nil {
			h.log.Warn("rollback check", "row", r.ID, "err", err)
			continue
		}
		switch {
		case r.Kind == KindDeleted:
			if props.ETag != "" {
				h.note("azurite rollback undid the delete of %s; deleted again", r.ID)
				_ = h.deleteInput(ctx, r)
			}
		case props.ETag == "" || props.ETag != r.ETag:
			// The upload was rolled back, or the input is legitimately
			// gone: converted (deleted by Sweep) or failed (quarantined).
			if r.Kind == KindOverwriteOld || (props.ETag == "" && h.legitimatelyGone(ctx, r)) {
				continue
			}
			h.note("azurite rollback lost the upload of %s (eTag %s); uploaded again", r.ID, r.ETag)
			h.event("azurite", "rollback: upload of %s lost", r.ID)
			h.reupload(ctx, r)
		}
	}
}

// legitimatelyGone reports whether a missing input was removed by the
// pipeline: done (Sweep deleted it) or failed and in quarantine.
func (h *harness) legitimatelyGone(ctx context.Context, r *Row) bool {
	recs := records.New(h.store, h.cfg.StatusContainer, nil)
	rec, err := recs.Get(ctx, r.Key)
	switch {
	case err != nil:
		return false
	case rec.State == records.StateDone:
		return true
	case rec.State == records.StateFailed && h.cfg.QuarantineContainer != "":
		_, err := h.store.Properties(ctx, h.cfg.QuarantineContainer, r.Name)
		return err == nil
	}
	return false
}

func (h *harness) reupload(ctx context.Context, r *Row) {
	h.mu.Lock()
	path := r.path
	h.mu.Unlock()
	if path == "" {
		h.note("cannot re-upload %s: source file unknown", r.ID)
		return
	}
	if err := h.upload(ctx, r, path); err != nil {
		h.note("re-upload %s: %v", r.ID, err)
	}
}

func (h *harness) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.log.Info(msg)
	h.mu.Lock()
	h.report.Notes = append(h.report.Notes, msg)
	h.mu.Unlock()
}

func (h *harness) ensureAllRunning(ctx context.Context) error {
	for _, c := range stack.Components() {
		if h.st.Pid(c) != 0 {
			continue
		}
		if err := h.restart(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

func (h *harness) restart(ctx context.Context, c string) error {
	return retry(ctx, "restart "+c, func(ctx context.Context) error {
		if h.st.Pid(c) != 0 {
			return nil
		}
		return h.st.Restart(ctx, c)
	})
}

// injectFaults fires opts.Kills faults at seeded random times within the
// window, each from opts.Faults, restarting what it killed.
func (h *harness) injectFaults(ctx context.Context, window time.Duration) {
	// The whole plan (times, targets, restart pauses) is drawn up front
	// from its own generator, so a seed always yields the same schedule
	// whatever else draws random numbers meanwhile.
	type step struct {
		at, pause time.Duration
		fault     string
	}
	rng := rand.New(rand.NewPCG(h.opts.Seed, 0xfa017))
	plan := make([]step, h.opts.Kills)
	for i := range plan {
		plan[i].at = time.Duration(rng.Int64N(int64(window)))
	}
	slices.SortFunc(plan, func(a, b step) int { return cmp.Compare(a.at, b.at) })
	for i := range plan {
		plan[i].fault = h.opts.Faults[rng.IntN(len(h.opts.Faults))]
		plan[i].pause = time.Duration(rng.Int64N(int64(h.opts.MaxRestartDelay)))
	}
	start := time.Now()
	for _, st := range plan {
		if !waitCtx(ctx, time.Until(start.Add(st.at))) {
			return
		}
		h.fault(ctx, st.fault, st.pause)
	}
	waitCtx(ctx, time.Until(start.Add(window)))
}

func (h *harness) count(m map[string]int, k string) {
	h.mu.Lock()
	m[k]++
	h.mu.Unlock()
}

func (h *harness) event(fault, format string, args ...any) {
	h.mu.Lock()
	h.report.Timeline = append(h.report.Timeline, FaultEvent{At: time.Since(h.faultsStart).Seconds(), Fault: fault, Detail: fmt.Sprintf(format, args...)})
	h.mu.Unlock()
}

func (h *harness) fault(ctx context.Context, f string, pause time.Duration) {
	switch f {
	case FaultHandler:
		pid := h.st.KillHandler()
		if pid == 0 {
			h.count(h.report.Missed, f)
			return
		}
		h.count(h.report.KillsByComponent, f)
		h.event(f, "SIGKILL pid %d", pid)
	case FaultFFmpeg:
		// Wait (briefly) for a running ffmpeg.
		deadline := time.Now().Add(3 * time.Second)
		for {
			if pids := h.st.TaskProcesses("ffmpeg"); len(pids) > 0 {
				pid := pids[h.randIntN(len(pids))]
				if err := killPid(pid); err == nil {
					h.count(h.report.KillsByComponent, f)
					h.event(f, "SIGKILL pid %d", pid)
					return
				}
			}
			if time.Now().After(deadline) || !waitCtx(ctx, 50*time.Millisecond) {
				h.count(h.report.Missed, f)
				return
			}
		}
	case FaultSBDrop:
		n := h.sbProxy.drop()
		h.count(h.report.KillsByComponent, f)
		h.event(f, "%d connections cut", n)
	default:
		if h.st.Pid(f) == 0 {
			h.count(h.report.Missed, f)
			return
		}
		killed := time.Now()
		if f == stack.Azurite {
			h.mu.Lock()
			h.storageKills = append(h.storageKills, killed)
			h.mu.Unlock()
		}
		pid := h.st.Pid(f)
		if err := h.st.Stop(f, true); err != nil {
			h.log.Warn("kill", "component", f, "err", err)
		}
		h.count(h.report.KillsByComponent, f)
		h.event(f, "SIGKILL pid %d", pid)
		waitCtx(ctx, pause)
		t0 := time.Now()
		// Restart even when the fault window just ended (ctx cancelled).
		rctx := context.WithoutCancel(ctx)
		if err := h.restart(rctx, f); err != nil {
			h.note("restart %s failed: %v", f, err)
			return
		}
		h.recovMu.Lock()
		h.recov[f] = append(h.recov[f], time.Since(t0))
		h.recovMu.Unlock()
		h.event(f, "restarted as pid %d after %.2f s", h.st.Pid(f), time.Since(killed).Seconds())
		if f == stack.Azurite {
			h.repairRollback(rctx, killed)
		}
	}
}

func percentiles(ds []time.Duration) p5095 {
	if len(ds) == 0 {
		return p5095{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(q*float64(len(s)-1) + 0.5)
		return s[i].Seconds()
	}
	return p5095{P50: at(0.5), P95: at(0.95), N: len(s)}
}

// drain waits until the queue is empty, no Batch task is left and every
// row has a terminal record, three polls in a row; then it replays
// a sample of the captured events and waits again.
func (h *harness) drain(ctx context.Context) error {
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, h.opts.DrainTimeout)
	defer cancel()
	err := h.waitQuiet(ctx)
	if err == nil {
		// Late duplicates: events for work that is finished (§6.6).
		h.report.EventFaults["replayed"] = h.egProxy.replay(ctx, replayFraction)
		err = h.waitQuiet(ctx)
	}
	h.report.DrainWaitSeconds = time.Since(t0).Seconds()
	h.mu.Lock()
	from := h.faultsEnd
	if n := len(h.report.Timeline); n > 0 {
		from = h.faultsStart.Add(time.Duration(h.report.Timeline[n-1].At * float64(time.Second)))
	}
	h.mu.Unlock()
	h.report.DrainSeconds = time.Since(from).Seconds()
	return err
}

func (h *harness) waitQuiet(ctx context.Context) error {
	stable := 0
	last := ""
	for {
		ok, why := h.quiet(ctx)
		if ok {
			stable++
			if stable >= 3 {
				return nil
			}
		} else {
			stable = 0
			last = why
		}
		if !waitCtx(ctx, time.Second) {
			return fmt.Errorf("not drained within %v: %s", h.opts.DrainTimeout, last)
		}
	}
}

// quiet reports whether nothing is left to do.
func (h *harness) quiet(ctx context.Context) (bool, string) {
	if n := h.egProxy.inflight.Load(); n > 0 {
		return false, fmt.Sprintf("%d event deliveries in flight", n)
	}
	msgs, err := h.peek(ctx, false)
	if err != nil {
		return false, "peek queue: " + err.Error()
	}
	if len(msgs) > 0 {
		return false, fmt.Sprintf("%d messages in the queue", len(msgs))
	}
	bc, err := h.st.BatchClient()
	if err != nil {
		return false, err.Error()
	}
	keys, err := bc.ListTaskKeys(ctx, h.cfg.BatchJob, 1000)
	if err != nil {
		return false, "list tasks: " + err.Error()
	}
	if len(keys) > 0 {
		return false, fmt.Sprintf("%d Batch tasks left", len(keys))
	}
	recs, err := h.listRecords(ctx)
	if err != nil {
		return false, "records: " + err.Error()
	}
	type pend struct {
		id   string
		keys []string
	}
	h.mu.Lock()
	var pending []pend
	for _, r := range h.rows {
		if r.expect.Outcome == media.Ignored && r.wantState == "" {
			continue
		}
		if rec, ok := recs[r.Key]; !ok || !rec.State.Terminal() {
			pending = append(pending, pend{r.ID, append([]string{r.Key}, r.superseded...)})
		}
	}
	obs := Observed{StorageKills: slices.Clone(h.storageKills)}
	h.mu.Unlock()
	if len(pending) > 0 && len(obs.StorageKills) > 0 {
		// A terminal record Azurite lost will never come back: do not wait
		// for it (Check reports it as lost_to_storage_rollback).
		if f, err := os.Open(filepath.Join(h.st.LogDir(), "funchost.log")); err == nil {
			obs.TerminalWrites, _ = ParseTerminalWrites(f)
			f.Close()
		}
		pending = slices.DeleteFunc(pending, func(p pend) bool { return obs.lostToRollback(p.keys...) })
	}
	if len(pending) > 0 {
		ids := make([]string, 0, 5)
		for _, p := range pending[:min(len(pending), 5)] {
			ids = append(ids, p.id)
		}
		return false, fmt.Sprintf("%d ledger rows unresolved (%s…)", len(pending), strings.Join(ids, ", "))
	}
	return true, ""
}

// peek returns the messages in the queue (or its dead-letter queue).
func (h *harness) peek(ctx context.Context, dlq bool) ([]*azservicebus.ReceivedMessage, error) {
	client, err := azservicebus.NewClientFromConnectionString(h.sbConn, nil)
	if err != nil {
		return nil, err
	}
	defer client.Close(context.WithoutCancel(ctx))
	var opts *azservicebus.ReceiverOptions
	if dlq {
		opts = &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter}
	}
	rcv, err := client.NewReceiverForQueue(h.cfg.Queue, opts)
	if err != nil {
		return nil, err
	}
	defer rcv.Close(context.WithoutCancel(ctx))
	pctx, c := context.WithTimeout(ctx, 10*time.Second)
	defer c()
	var out []*azservicebus.ReceivedMessage
	for range 100 { // bounded: ≤ 100 pages
		page, err := rcv.PeekMessages(pctx, 250, nil)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return out, nil
		}
		out = append(out, page...)
	}
	return out, nil
}

func (h *harness) listRecords(ctx context.Context) (map[string]records.Record, error) {
	recs := records.New(h.store, h.cfg.StatusContainer, nil)
	var keys []string
	err := h.store.List(ctx, h.cfg.StatusContainer, "", func(it storage.Item) bool {
		keys = append(keys, it.Name)
		return true
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]records.Record, len(keys))
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rec, err := recs.Get(ctx, k)
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, records.ErrNotFound) {
				return
			}
			if err != nil {
				errs = append(errs, err)
				return
			}
			out[k] = rec
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func (h *harness) listBlobs(ctx context.Context, container string) (map[string]string, error) {
	out := map[string]string{}
	err := h.store.List(ctx, container, "", func(it storage.Item) bool {
		out[it.Name] = it.ETag
		return true
	})
	return out, err
}

// observeAndCheck collects the end state and runs Check.
func (h *harness) observeAndCheck(ctx context.Context) error {
	var obs Observed
	var outs map[string]string
	steps := []struct {
		what string
		do   func(context.Context) error
	}{
		{"records", func(ctx context.Context) (err error) { obs.Records, err = h.listRecords(ctx); return }},
		{"inputs", func(ctx context.Context) (err error) {
			obs.Inputs, err = h.listBlobs(ctx, h.cfg.InputContainer)
			return
		}},
		{"quarantine", func(ctx context.Context) (err error) {
			if h.cfg.QuarantineContainer == "" {
				return nil
			}
			obs.Quarantine, err = h.listBlobs(ctx, h.cfg.QuarantineContainer)
			return
		}},
		{"outputs", func(ctx context.Context) (err error) { outs, err = h.listBlobs(ctx, h.cfg.OutputContainer); return }},
		{"dead letters", func(ctx context.Context) error {
			dl, err := h.peek(ctx, true)
			if err != nil {
				return err
			}
			obs.DLQ = nil
			for _, m := range dl {
				obs.DLQ = append(obs.DLQ, DeadLetter{MessageID: m.MessageID, Reason: deref(m.DeadLetterReason)})
			}
			return nil
		}},
	}
	for _, st := range steps {
		if err := retry(ctx, "observe "+st.what, st.do); err != nil {
			return fmt.Errorf("chaos: %w", err)
		}
	}
	var err error
	if obs.Outputs, err = h.verifyOutputs(ctx, slices.Sorted(maps.Keys(outs))); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	if f, err := os.Open(filepath.Join(h.st.LogDir(), "funchost.log")); err == nil {
		obs.TerminalWrites, err = ParseTerminalWrites(f)
		f.Close()
		if err != nil {
			h.note("terminal writes: %v", err)
		}
	}
	h.mu.Lock()
	obs.StorageKills = slices.Clone(h.storageKills)
	h.mu.Unlock()
	h.mu.Lock()
	rows := make([]Row, len(h.rows))
	for i, r := range h.rows {
		rows[i] = *r
	}
	h.mu.Unlock()
	sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })
	rep := h.report
	rep.Rows = len(rows)
	rep.Result = Check(rows, obs, media.DefaultTolerance)
	rep.DLQByReason = map[string]int{}
	for _, d := range obs.DLQ {
		rep.DLQByReason[cmp.Or(d.Reason, "(none)")]++
	}
	rep.EventFaults["delayed"] = int(h.egProxy.delayed.Load())
	rep.EventFaults["duplicated"] = int(h.egProxy.duplicates.Load())
	rep.RecoverySeconds = map[string]p5095{}
	for c, ds := range h.recov {
		rep.RecoverySeconds[c] = percentiles(ds)
	}
	h.executions(rows)
	h.scanSecrets()
	rep.SecurityChecks = h.securityChecks(ctx)
	rep.Ledger = rows
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// verifyOutputs downloads each output and checks it with ffprobe.
func (h *harness) verifyOutputs(ctx context.Context, names []string) (map[string]OutputBlob, error) {
	dir := filepath.Join(h.dir, "outputs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	out := make(map[string]OutputBlob, len(names))
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			local := filepath.Join(dir, fmt.Sprintf("out-%05d.mp3", i))
			var size int64
			err := retry(ctx, "download "+n, func(ctx context.Context) error {
				f, err := os.Create(local)
				if err != nil {
					return err
				}
				defer f.Close()
				size, err = h.blob.DownloadFile(ctx, h.cfg.OutputContainer, n, f, nil)
				return err
			})
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("download %q: %w", n, err))
				mu.Unlock()
				return
			}
			ob := OutputBlob{Size: size}
			if ob.Err = media.VerifyAudio(ctx, local, outputExt, 0, 0); ob.Err == nil {
				ob.Duration, ob.Err = media.DecodedAudioDuration(ctx, local)
			}
			_ = os.Remove(local)
			mu.Lock()
			out[n] = ob
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}
