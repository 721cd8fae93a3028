package eventgrid

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/google/uuid"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
	"github.com/ffpipe/ffpipe/internal/secret"
	"github.com/ffpipe/ffpipe/internal/sleep"
)

// Schema is a subscription's event delivery schema.
type Schema string

const (
	// SchemaEventGrid is the Event Grid schema (the default).
	SchemaEventGrid Schema = "EventGridSchema"
	// SchemaCloudEvents is CloudEvents 1.0 (structured mode, one event per request).
	SchemaCloudEvents Schema = "CloudEventSchemaV1_0"
)

// BlobCreated is the only event type the stand-in emits.
const BlobCreated = "Microsoft.Storage.BlobCreated"

// Subscription is a webhook event subscription on the storage account topic.
type Subscription struct {
	// Name of the subscription; sent upper-cased in aeg-subscription-name.
	Name string
	// Endpoint is the webhook URL, e.g. funchost's
	// /runtime/webhooks/eventgrid?functionName=OnBlobCreated.
	Endpoint string
	// SubjectBeginsWith and SubjectEndsWith filter on the subject
	// (/blobServices/default/containers/<c>/blobs/<name>), case-insensitively
	// unless SubjectCaseSensitive (Azure's isSubjectCaseSensitive, default false).
	SubjectBeginsWith, SubjectEndsWith string
	SubjectCaseSensitive               bool
	// Schema defaults to SchemaEventGrid.
	Schema Schema
}

func (s Subscription) matches(subject string) bool {
	b, e, subj := s.SubjectBeginsWith, s.SubjectEndsWith, subject
	if !s.SubjectCaseSensitive {
		b, e, subj = strings.ToLower(b), strings.ToLower(e), strings.ToLower(subj)
	}
	return strings.HasPrefix(subj, b) && strings.HasSuffix(subj, e)
}

// Options configure a Server.
type Options struct {
	// ConnectionString of the storage account (e.g. azurite's). Or use
	// ServiceURL with Credential (nil Credential = anonymous/SAS in the URL).
	ConnectionString string
	ServiceURL       string
	Credential       *azblob.SharedKeyCredential
	// Containers to watch. Required.
	Containers []string
	// Subscriptions to deliver to. Required.
	Subscriptions []Subscription
	// DataDir holds the cursor (state.json) and dead letters
	// (deadletter/<SUBSCRIPTION>.jsonl). Empty: in memory only.
	DataDir string
	// PollInterval between listings. Default 100 ms (half of it is the
	// average detection delay; Poke skips it).
	PollInterval time.Duration
	// Topic is the event topic. Default
	// /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ffpipe-local/providers/Microsoft.Storage/storageAccounts/<account>.
	Topic string
	// SkipExisting: on a first start (no state file) record the blobs that
	// already exist without emitting events for them. Default false: they
	// are delivered, so nothing uploaded before the stand-in started is lost.
	SkipExisting bool
	// MaxDeliveryAttempts before an event is dead-lettered. Default 30, as
	// in Azure; with the compressed schedule that is about 4.5 minutes, so a
	// restarting Functions host does not lose events.
	MaxDeliveryAttempts int
	// RetryDelay is the first retry delay, doubled per attempt up to
	// MaxRetryDelay (a time-compressed version of Event Grid's 10 s, 30 s,
	// 1 min, … schedule). Defaults 200 ms and 10 s.
	RetryDelay, MaxRetryDelay time.Duration
	// DeliveryTimeout per request; Event Grid waits 30 s. Default 30 s.
	DeliveryTimeout time.Duration
	// Concurrency of deliveries per subscription. Default 8.
	Concurrency int
	// HTTPClient for webhook calls. Default: a client without a timeout
	// (DeliveryTimeout applies per request).
	HTTPClient *http.Client
	// Logger. Default: discard.
	Logger *slog.Logger
}

// Stats counts deliveries.
type Stats struct {
	Published    int64 // events created (one per blob change and matching subscription)
	Delivered    int64 // acknowledged with 200–204
	Retried      int64 // failed attempts that will be retried
	DeadLettered int64
	Pending      int
}

// Server watches containers and delivers BlobCreated events.
type Server struct {
	opts    Options
	log     *slog.Logger
	client  *azblob.Client
	account string
	topic   string
	http    *http.Client

	poke   chan struct{}
	dirty  chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	st      state
	queues  map[string]*queue // by subscription name
	stats   Stats
	started bool
	closed  bool
	scanned chan struct{} // closed and replaced after every completed scan

	validators map[string]*validator
	listErrs   map[string]listErr // last listing error per container (log rate limit)
}

type listErr struct {
	msg string
	at  time.Time
}

// New returns a Server that is not yet started.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 100 * time.Millisecond
	}
	if opts.MaxDeliveryAttempts <= 0 {
		opts.MaxDeliveryAttempts = 30
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = 200 * time.Millisecond
	}
	if opts.MaxRetryDelay <= 0 {
		opts.MaxRetryDelay = 10 * time.Second
	}
	if opts.DeliveryTimeout <= 0 {
		opts.DeliveryTimeout = 30 * time.Second
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64 // Concurrency deliveries per subscription reuse connections
		opts.HTTPClient = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	for i := range opts.Subscriptions {
		if opts.Subscriptions[i].Schema == "" {
			opts.Subscriptions[i].Schema = SchemaEventGrid
		}
	}
	return &Server{
		opts:    opts,
		log:     opts.Logger,
		http:    opts.HTTPClient,
		poke:    make(chan struct{}, 1),
		dirty:   make(chan struct{}, 1),
		queues:  map[string]*queue{},
		scanned: make(chan struct{}),
	}
}

// Validate reports the first bad option.
func (o Options) Validate() error {
	if o.ConnectionString == "" && o.ServiceURL == "" {
		return fmt.Errorf("eventgrid: ConnectionString or ServiceURL: %w", ErrConfig)
	}
	if len(o.Containers) == 0 {
		return fmt.Errorf("eventgrid: Containers: %w", ErrConfig)
	}
	if len(o.Subscriptions) == 0 {
		return fmt.Errorf("eventgrid: Subscriptions: %w", ErrConfig)
	}
	names := map[string]bool{}
	for i, s := range o.Subscriptions {
		if s.Name == "" || names[strings.ToUpper(s.Name)] {
			return fmt.Errorf("eventgrid: Subscriptions[%d].Name %q empty or duplicate: %w", i, s.Name, ErrConfig)
		}
		names[strings.ToUpper(s.Name)] = true
		if u, err := url.Parse(s.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("eventgrid: Subscriptions[%d].Endpoint %q: %w", i, redact(s.Endpoint), ErrConfig)
		}
		if s.Schema != "" && s.Schema != SchemaEventGrid && s.Schema != SchemaCloudEvents {
			return fmt.Errorf("eventgrid: Subscriptions[%d].Schema %q: %w", i, s.Schema, ErrConfig)
		}
		// Case folding turns every invalid byte into U+FFFD, so such a
		// filter would match subjects it does not spell (FuzzSubscriptionMatches).
		if !utf8.ValidString(s.SubjectBeginsWith) || !utf8.ValidString(s.SubjectEndsWith) {
			return fmt.Errorf("eventgrid: Subscriptions[%d] subject filter is not valid UTF-8: %w", i, ErrConfig)
		}
	}
	return nil
}

func redact(s string) string { return secret.Redact(s) }

// Start loads the cursor, validates nothing yet (handshakes happen before
// each subscription's first delivery) and starts scanning and delivering.
func (s *Server) Start(ctx context.Context) error {
	if err := s.opts.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.started {
		s.mu.Unlock()
		return errors.New("eventgrid: already started")
	}
	s.started = true
	s.mu.Unlock()

	if err := s.connect(); err != nil {
		return err
	}
	firstStart, err := s.load()
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	for _, sub := range s.opts.Subscriptions {
		q := newQueue()
		s.queues[sub.Name] = q
		for i := 0; i < s.opts.Concurrency; i++ {
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.deliverLoop(runCtx, sub, q) }()
		}
	}
	if n := s.requeueOutbox(); n > 0 {
		s.log.Info("eventgrid: redelivering events pending from the last run", "count", n)
	}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.flushLoop(runCtx) }()
	go func() { defer s.wg.Done(); s.scanLoop(runCtx, firstStart && s.opts.SkipExisting) }()
	s.log.Info("eventgrid stand-in started", "account", s.account, "containers", s.opts.Containers,
		"subscriptions", len(s.opts.Subscriptions), "poll", s.opts.PollInterval)
	return nil
}

// connect builds the blob client and derives the account name and topic.
func (s *Server) connect() error {
	var err error
	if s.opts.ConnectionString != "" {
		cs := s.opts.ConnectionString
		if strings.Contains(strings.ToLower(cs), "usedevelopmentstorage=true") {
			// The SDK does not expand the shorthand: Azurite's default endpoint.
			cs = azurite.ConnectionString("http://127.0.0.1:10000/" + azurite.Account)
		}
		s.client, err = azblob.NewClientFromConnectionString(cs, nil)
		s.account = accountFromConnectionString(s.opts.ConnectionString)
	} else if s.opts.Credential != nil {
		s.client, err = azblob.NewClientWithSharedKeyCredential(s.opts.ServiceURL, s.opts.Credential, nil)
		s.account = s.opts.Credential.AccountName()
	} else {
		s.client, err = azblob.NewClientWithNoCredential(s.opts.ServiceURL, nil)
	}
	if err != nil {
		return fmt.Errorf("eventgrid: blob client: %s", redact(err.Error()))
	}
	if s.account == "" {
		s.account = accountFromURL(s.client.URL())
	}
	s.topic = s.opts.Topic
	if s.topic == "" {
		s.topic = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ffpipe-local/providers/Microsoft.Storage/storageAccounts/" + s.account
	}
	return nil
}

// requeueOutbox queues what was pending when the last run stopped, in id
// order, and drops entries of subscriptions that no longer exist. It
// returns how many it queued.
func (s *Server) requeueOutbox() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.st.Outbox))
	for id := range s.st.Outbox {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	n := 0
	for _, id := range ids {
		p := s.st.Outbox[id]
		if q := s.queues[p.Subscription]; q != nil {
			q.push(p)
			n++
		} else {
			delete(s.st.Outbox, id)
		}
	}
	return n
}

func accountFromConnectionString(cs string) string {
	for _, part := range strings.Split(cs, ";") {
		if k, v, ok := strings.Cut(part, "="); ok && strings.EqualFold(strings.TrimSpace(k), "AccountName") {
			return strings.TrimSpace(v)
		}
	}
	if strings.Contains(strings.ToLower(cs), "usedevelopmentstorage=true") {
		return "devstoreaccount1"
	}
	return ""
}

// accountFromURL handles path-style (http://127.0.0.1:10000/devstoreaccount1)
// and host-style (https://acct.blob.core.windows.net) URLs.
func accountFromURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	if first, _, _ := strings.Cut(strings.Trim(p.Path, "/"), "/"); first != "" {
		return first
	}
	h, _, _ := strings.Cut(p.Hostname(), ".")
	return h
}

// Stats returns delivery counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Pending = len(s.st.Outbox)
	return st
}

// Close stops scanning and delivering and saves the cursor. Events not yet
// delivered stay in the cursor and are delivered after the next Start.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool { return sleep.For(ctx, d) }

func newUUID() string { return uuid.NewString() }
