package batch

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultToken is the bearer token the stand-in accepts when Options.Token is
// empty. It is a development value, not a secret.
const DefaultToken = "ffpipe-local-batch-token"

// APIVersion is the api-version the azbatch v0.1.0 SDK sends. Other versions
// are accepted.
const APIVersion = "2024-07-01.20.0"

// Options configures a Server. The zero value is usable.
type Options struct {
	// Addr is the listen address; default "127.0.0.1:0".
	Addr string
	// DataDir holds the state log and the node directories. "" keeps state
	// in memory and runs tasks under a temporary directory removed on Close.
	DataDir string
	// Token is the accepted bearer token; default DefaultToken.
	Token string
	// MaxSlots caps the task slots of all local nodes together; default
	// runtime.NumCPU().
	MaxSlots int
	// Logger receives structured logs; default discards.
	Logger *slog.Logger
	// Env is extra environment ("NAME=value") for task and start task
	// processes, e.g. PATH. Without a PATH entry the default
	// /usr/local/bin:/usr/bin:/bin is used.
	Env []string
	// DeletionDelay is how long a deleted job or pool stays in state
	// "deleting" (writes to it fail with 409) before it vanishes; default
	// 1s, negative for none.
	DeletionDelay time.Duration
	// AccountName is reported as AZ_BATCH_ACCOUNT_NAME and is the account
	// of Shared Key requests; default "local".
	AccountName string
	// AccountKey is the base64 Shared Key accepted besides the bearer token
	// (the Python azure-batch SDK signs with it); default DefaultAccountKey.
	AccountKey string
}

func (o *Options) fill() {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Token == "" {
		o.Token = DefaultToken
	}
	if o.MaxSlots <= 0 {
		o.MaxSlots = runtime.NumCPU()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.AccountName == "" {
		o.AccountName = "local"
	}
	if o.AccountKey == "" {
		o.AccountKey = DefaultAccountKey
	}
	if o.DeletionDelay == 0 {
		o.DeletionDelay = time.Second
	}
}

// Validate names the first bad field.
func (o Options) Validate() error {
	if o.MaxSlots < 0 {
		return fmt.Errorf("batch emulator options: MaxSlots %d is negative", o.MaxSlots)
	}
	if _, err := base64.StdEncoding.DecodeString(o.AccountKey); err != nil {
		return fmt.Errorf("batch emulator options: AccountKey is not base64: %w", err)
	}
	for _, kv := range o.Env {
		if !strings.Contains(kv, "=") {
			return fmt.Errorf("batch emulator options: Env entry %q is not NAME=value", kv)
		}
	}
	return nil
}

// Server is the local Azure Batch stand-in.
type Server struct {
	opts Options
	log  *slog.Logger

	ln      net.Listener
	srv     *http.Server
	handler http.Handler // the route table with its middleware
	fresh   freshConns
	url     string
	root    string // node directories live under root/nodes
	tmpRoot bool

	mu        sync.Mutex
	started   bool
	closed    bool
	pools     map[string]*poolEntry // by lower-case id
	poolList  []*poolEntry
	jobs      map[string]*jobEntry
	jobList   []*jobEntry
	seq       uint64
	journal   *journal
	records   int // records appended since the last compaction
	runs      map[*run]struct{}
	timers    map[*taskEntry]*time.Timer
	pending   map[*time.Timer]struct{} // laterLocked work (deletions)
	slotsUsed int                      // slots handed to nodes

	kick chan struct{}
	stop chan struct{}
	// ctx is cancelled by Close; downloads, uploads and start tasks use it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	lastETag atomic.Uint64

	// execDisabled makes every process launch fail (fuzzing the handlers
	// must not run the command lines it invents).
	execDisabled bool
}

// New returns an unstarted Server.
func New(opts Options) *Server {
	opts.fill()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		ctx:     ctx,
		cancel:  cancel,
		opts:    opts,
		log:     opts.Logger,
		pools:   map[string]*poolEntry{},
		jobs:    map[string]*jobEntry{},
		runs:    map[*run]struct{}{},
		timers:  map[*taskEntry]*time.Timer{},
		pending: map[*time.Timer]struct{}{},
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	s.handler = s.routes()
	return s
}

// Start loads the state, listens and starts scheduling. ctx bounds only the
// start-up.
func (s *Server) Start(ctx context.Context) error {
	if err := s.opts.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return ErrStarted
	}
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.started = true
	s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}

	if s.opts.DataDir == "" {
		dir, err := os.MkdirTemp("", "ffpipe-batch-")
		if err != nil {
			return fmt.Errorf("start batch emulator: %w", err)
		}
		s.root, s.tmpRoot = dir, true
	} else {
		if err := os.MkdirAll(s.opts.DataDir, 0o755); err != nil {
			return fmt.Errorf("start batch emulator: %w", err)
		}
		abs, err := filepath.Abs(s.opts.DataDir)
		if err != nil {
			return fmt.Errorf("start batch emulator: %w", err)
		}
		s.root = abs
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.Addr)
	if err != nil {
		s.cleanupRoot()
		return fmt.Errorf("start batch emulator: listen %s: %w", s.opts.Addr, err)
	}
	s.ln = ln
	s.url = "http://" + ln.Addr().String()

	if s.opts.DataDir != "" {
		if err := s.load(); err != nil {
			ln.Close()
			return fmt.Errorf("start batch emulator: %w", err)
		}
	}

	s.srv = &http.Server{
		Handler:           s,
		ConnState:         s.fresh.track,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("batch emulator serve", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		s.scheduler()
	}()

	s.mu.Lock()
	for _, p := range s.poolList {
		s.reconcileNodesLocked(p, "")
	}
	s.mu.Unlock()
	s.poke()
	s.log.Info("batch emulator listening", "url", s.url, "dataDir", s.opts.DataDir, "maxSlots", s.opts.MaxSlots)
	return nil
}

// URL returns the base URL, e.g. http://127.0.0.1:8090 (for azbatch.NewClient).
func (s *Server) URL() string { return s.url }

// Addr returns the listen address.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Token returns the accepted bearer token.
func (s *Server) Token() string { return s.opts.Token }

// AccountName returns the account name of Shared Key requests.
func (s *Server) AccountName() string { return s.opts.AccountName }

// AccountKey returns the base64 Shared Key accepted for AccountName.
func (s *Server) AccountKey() string { return s.opts.AccountKey }

// Close stops serving, kills running task processes (their tasks stay
// "running" in the state log and are requeued by the next Start, as Batch
// does after node loss), flushes the log and removes temporary directories.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	started := s.started
	runs := make([]*run, 0, len(s.runs))
	for r := range s.runs {
		runs = append(runs, r)
	}
	for _, t := range s.timers {
		t.Stop()
	}
	s.timers = map[*taskEntry]*time.Timer{}
	for t := range s.pending {
		t.Stop()
	}
	for _, p := range s.poolList {
		for _, n := range p.nodes {
			if n.startCancel != nil {
				n.startCancel()
			}
		}
	}
	s.mu.Unlock()
	if !started {
		s.cancel()
		return nil
	}
	for _, r := range runs {
		r.kill(killShutdown)
	}
	s.cancel()
	close(s.stop)
	var err error
	if s.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = s.fresh.shutdown(ctx, s.srv)
		cancel()
		if err != nil {
			_ = s.srv.Close()
		}
	}
	s.wg.Wait()
	s.mu.Lock()
	j := s.journal
	s.mu.Unlock()
	if jerr := j.close(); jerr != nil && err == nil {
		err = jerr
	}
	s.cleanupRoot()
	return err
}

func (s *Server) cleanupRoot() {
	if s.tmpRoot && s.root != "" {
		_ = os.RemoveAll(s.root)
	}
}

// poke asks the scheduler to look for work.
func (s *Server) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// newETag returns a unique Batch-style ETag: 0x and 15 upper-case hex digits.
func (s *Server) newETag() string {
	for {
		last := s.lastETag.Load()
		next := uint64(time.Now().UnixNano()/100) & 0xFFFFFFFFFFFFFFF
		if next <= last {
			next = last + 1
		}
		if s.lastETag.CompareAndSwap(last, next) {
			return fmt.Sprintf("0x%015X", next)
		}
	}
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// now is the time stamped on entities: UTC at Batch's resolution, 100 ns
// (seven fractional digits; RFC 3339 drops trailing zeros, as Batch does).
func now() time.Time { return wireTime(time.Now()) }

func wireTime(t time.Time) time.Time { return t.UTC().Truncate(100 * time.Nanosecond) }

// reqCtx carries one request through the handlers.
type reqCtx struct {
	s   *Server
	w   http.ResponseWriter
	r   *http.Request
	rid string
	q   url.Values
}

const jsonType = "application/json; odata=minimalmetadata"

func (c *reqCtx) fail(e *apiError) {
	if e.status >= 500 {
		c.s.log.Error("batch request failed", "method", c.r.Method, "path", c.r.URL.Path, "status", e.status, "code", e.code, "msg", e.msg)
	} else {
		c.s.log.Debug("batch request rejected", "method", c.r.Method, "path", c.r.URL.Path, "status", e.status, "code", e.code)
	}
	body := c.errorBody(e)
	c.w.Header().Set("Content-Type", jsonType)
	c.w.WriteHeader(e.status)
	_ = json.NewEncoder(c.w).Encode(body)
}

func (c *reqCtx) errorBody(e *apiError) *odataError {
	return &odataError{
		Metadata: c.s.url + "/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element",
		Code:     e.code,
		Message: odataMessage{Lang: "en-US",
			Value: fmt.Sprintf("%s\nRequestId:%s\nTime:%s", e.msg, c.rid, now().Format(time.RFC3339Nano))},
		Values: e.values,
	}
}

// writeJSON sends status and body; metadata, when set, is spliced in as
// "odata.metadata".
func (c *reqCtx) writeJSON(status int, metadata string, body []byte) {
	if metadata != "" {
		body = withMetadata(c.s.url+"/$metadata#"+metadata, body)
	}
	c.w.Header().Set("Content-Type", jsonType)
	c.w.WriteHeader(status)
	_, _ = c.w.Write(body)
}

func withMetadata(meta string, body []byte) []byte {
	m, _ := json.Marshal(meta)
	var b bytes.Buffer
	b.Grow(len(body) + len(m) + 24)
	b.WriteString(`{"odata.metadata":`)
	b.Write(m)
	rest := bytes.TrimPrefix(bytes.TrimSpace(body), []byte("{"))
	if !bytes.HasPrefix(rest, []byte("}")) {
		b.WriteByte(',')
	}
	b.Write(rest)
	return b.Bytes()
}

// entityHeaders sets ETag and Last-Modified (RFC1123 GMT, as the SDK parses).
func (c *reqCtx) entityHeaders(etag string, lm time.Time) {
	h := c.w.Header()
	if etag != "" {
		h.Set("ETag", etag)
	}
	if !lm.IsZero() {
		h.Set("Last-Modified", lm.UTC().Format(http.TimeFormat))
	}
}

func (c *reqCtx) noContent(status int, etag string, lm time.Time, dataServiceID string) {
	c.entityHeaders(etag, lm)
	if dataServiceID != "" {
		c.w.Header().Set("DataServiceId", dataServiceID)
	}
	c.w.Header().Set("Content-Length", "0")
	c.w.WriteHeader(status)
}

func (c *reqCtx) created(etag string, lm time.Time, location string) {
	c.w.Header().Set("Location", location)
	c.noContent(http.StatusCreated, etag, lm, location)
}

// decode reads a JSON body strictly (unknown properties are errors) into v.
func (c *reqCtx) decode(limit int64, v any) *apiError {
	data, aerr := c.readBody(limit)
	if aerr != nil {
		return aerr
	}
	return decodeStrict(data, v)
}

func (c *reqCtx) readBody(limit int64) ([]byte, *apiError) {
	data, err := io.ReadAll(io.LimitReader(c.r.Body, limit+1))
	if err != nil {
		return nil, errBadBody("read body: " + err.Error())
	}
	if int64(len(data)) > limit {
		return nil, newErr(http.StatusRequestEntityTooLarge, "RequestBodyTooLarge",
			"The request body is too large and exceeds the maximum permissible limit.",
			"MaxLimit", fmt.Sprint(limit))
	}
	return data, nil
}

func decodeStrict(data []byte, v any) *apiError {
	if len(bytes.TrimSpace(data)) == 0 {
		return errBadBody("the request body is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		msg := strings.TrimPrefix(err.Error(), "json: ")
		if name, ok := strings.CutPrefix(msg, "unknown field "); ok {
			if name, err := strconv.Unquote(name); err == nil && unmodelledProperties[name] {
				return errUnsupported(name, name+" is a Batch property that the local Batch stand-in does not model")
			}
		}
		return errBadBody(msg)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errBadBody("unexpected data after the JSON object")
	}
	return nil
}

// unmodelledProperties are request-body properties of the Batch API
// versions clients send (azbatch: 2024-07-01.20.0; Python azure-batch 13:
// 2022-10-01.16.0) that the wire types do not declare. They are refused as
// UnsupportedProperty by name rather than as unknown properties.
var unmodelledProperties = map[string]bool{
	"cloudServiceConfiguration": true, // pools, retired in 2024
	"applicationLicenses":       true, // pools, Windows/licensed software
	"identity":                  true, // pools, managed identities
	"maxTasksPerNode":           true, // pools before 2020-09-01 (now taskSlotsPerNode)
}

// ServeHTTP serves the Batch REST API through the route table (routes.go).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// freshConns are the connections that have not sent a request yet.
// http.Server.Shutdown counts them as busy for their first 5 seconds, and
// a client that opened spare connections for concurrent calls (azbatch
// does) leaves some behind: shutdown closes them instead of waiting.
type freshConns struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (f *freshConns) track(c net.Conn, st http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st == http.StateNew {
		if f.conns == nil {
			f.conns = map[net.Conn]struct{}{}
		}
		f.conns[c] = struct{}{}
		return
	}
	delete(f.conns, c)
}

// shutdown runs srv.Shutdown, closing fresh connections meanwhile.
func (f *freshConns) shutdown(ctx context.Context, srv *http.Server) error {
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			f.mu.Lock()
			for c := range f.conns {
				_ = c.Close()
				delete(f.conns, c)
			}
			f.mu.Unlock()
		}
	}
}
