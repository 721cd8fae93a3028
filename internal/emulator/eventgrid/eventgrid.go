package eventgrid

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
	"github.com/ffpipe/ffpipe/internal/fsutil"
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

// state is the persisted cursor.
type state struct {
	// Seen maps "container/blob" to the last eTag an event was created for.
	Seen      map[string]string   `json:"seen"`
	Sequencer uint64              `json:"sequencer"`
	Outbox    map[string]*pending `json:"outbox"` // by delivery id
}

// pending is one event awaiting delivery to one subscription.
type pending struct {
	ID           string          `json:"id"`
	Subscription string          `json:"subscription"`
	Event        json.RawMessage `json:"event"` // rendered in the subscription's schema
	Attempts     int             `json:"attempts"`
	Published    time.Time       `json:"published"`
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

var secretPattern = regexp.MustCompile(`(?i)(AccountKey|SharedAccessKey|sig|code)=[^;&\s"]+`)

func redact(s string) string { return secretPattern.ReplaceAllString(s, "$1=REDACTED") }

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
	// Re-enqueue what was pending when the last run stopped.
	s.mu.Lock()
	ids := make([]string, 0, len(s.st.Outbox))
	for id := range s.st.Outbox {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		p := s.st.Outbox[id]
		if q := s.queues[p.Subscription]; q != nil {
			q.push(p)
		} else {
			delete(s.st.Outbox, id)
		}
	}
	s.mu.Unlock()
	if len(ids) > 0 {
		s.log.Info("eventgrid: redelivering events pending from the last run", "count", len(ids))
	}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.flushLoop(runCtx) }()
	go func() { defer s.wg.Done(); s.scanLoop(runCtx, firstStart && s.opts.SkipExisting) }()
	s.log.Info("eventgrid stand-in started", "account", s.account, "containers", s.opts.Containers,
		"subscriptions", len(s.opts.Subscriptions), "poll", s.opts.PollInterval)
	return nil
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

func (s *Server) statePath() string {
	if s.opts.DataDir == "" {
		return ""
	}
	return filepath.Join(s.opts.DataDir, "state.json")
}

// load reads the cursor; it reports whether there was none.
func (s *Server) load() (bool, error) {
	s.st = state{Seen: map[string]string{}, Outbox: map[string]*pending{}}
	p := s.statePath()
	if p == "" {
		return true, nil
	}
	raw, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("eventgrid: read state: %w", err)
	}
	if err := json.Unmarshal(raw, &s.st); err != nil {
		return false, fmt.Errorf("eventgrid: parse state %s: %w", p, err)
	}
	if s.st.Seen == nil {
		s.st.Seen = map[string]string{}
	}
	if s.st.Outbox == nil {
		s.st.Outbox = map[string]*pending{}
	}
	// A damaged or hand-edited cursor: an entry without an event cannot be
	// delivered (a null one crashed Start), and delivery removes an entry
	// by its id, so the key must be it.
	for id, p := range s.st.Outbox {
		if p == nil || len(p.Event) == 0 {
			delete(s.st.Outbox, id)
			continue
		}
		p.ID = id
	}
	return false, nil
}

func (s *Server) markDirty() {
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

// flushLoop writes the cursor whenever it changed; writes coalesce.
func (s *Server) flushLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			s.flush()
			return
		case <-s.dirty:
			s.flush()
		}
	}
}

func (s *Server) flush() {
	p := s.statePath()
	if p == "" {
		return
	}
	s.mu.Lock()
	raw, err := json.Marshal(&s.st)
	s.mu.Unlock()
	if err == nil {
		err = fsutil.WriteFileAtomic(p, raw)
	}
	if err != nil {
		s.log.Error("eventgrid: save state", "err", err)
	}
}

// Poke asks for a scan now instead of at the next poll.
func (s *Server) Poke() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// Scan runs one listing pass and waits for it (for tests and tools).
func (s *Server) Scan(ctx context.Context) error {
	s.mu.Lock()
	ch := s.scanned
	s.mu.Unlock()
	// The scan that is running may have listed before the caller's change;
	// wait for two completions after the poke.
	for range 2 {
		s.Poke()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.Lock()
		ch = s.scanned
		s.mu.Unlock()
	}
	return nil
}

func (s *Server) scanLoop(ctx context.Context, skip bool) {
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for {
		s.scan(ctx, skip)
		skip = false
		s.mu.Lock()
		close(s.scanned)
		s.scanned = make(chan struct{})
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.poke:
		}
	}
}

// scan lists every container and publishes events for new or changed blobs.
func (s *Server) scan(ctx context.Context, skip bool) {
	if s.listErrs == nil {
		s.listErrs = map[string]listErr{}
	}
	for _, c := range s.opts.Containers {
		err := s.scanContainer(ctx, c, skip)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if _, failed := s.listErrs[c]; failed {
				s.log.Info("eventgrid: listing works again", "container", c)
				delete(s.listErrs, c)
			}
			continue
		}
		if bloberror.HasCode(err, bloberror.ContainerNotFound) {
			s.log.Debug("eventgrid: container does not exist yet", "container", c)
			continue
		}
		// Storage down: say so once, then every 10 s, not at every poll.
		msg := redact(err.Error())
		if last, ok := s.listErrs[c]; ok && last.msg == msg && time.Since(last.at) < 10*time.Second {
			continue
		}
		s.listErrs[c] = listErr{msg: msg, at: time.Now()}
		s.log.Warn("eventgrid: list container", "container", c, "err", msg)
	}
}

type blobInfo struct {
	name, etag, contentType, blobType, api, url string
	length                                      int64
}

func (s *Server) scanContainer(ctx context.Context, name string, skip bool) error {
	cc := s.client.ServiceClient().NewContainerClient(name)
	pager := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{Copy: true}})
	var found []blobInfo
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, it := range page.Segment.BlobItems {
			if it.Name == nil || it.Properties == nil || it.Properties.ETag == nil {
				continue
			}
			p := it.Properties
			b := blobInfo{name: *it.Name, etag: normalizeETag(string(*p.ETag)), blobType: "BlockBlob", api: "PutBlob"}
			if p.ContentType != nil {
				b.contentType = *p.ContentType
			}
			if p.ContentLength != nil {
				b.length = *p.ContentLength
			}
			if p.BlobType != nil {
				b.blobType = string(*p.BlobType)
			}
			switch {
			case p.CopyID != nil && p.CopyStatus != nil && string(*p.CopyStatus) == "success":
				b.api = "CopyBlob"
			case p.CopyID != nil:
				continue // copy still pending: not committed yet
			case b.length > 256<<20:
				b.api = "PutBlockList" // larger than one Put Blob: SDK uploads in blocks
			}
			b.url = blobURL(cc.URL(), b.name)
			found = append(found, b)
		}
	}
	now := time.Now().UTC()
	var newPending []*pending
	s.mu.Lock()
	present := make(map[string]bool, len(found))
	for _, b := range found {
		key := name + "/" + b.name
		present[key] = true
		if s.st.Seen[key] == b.etag {
			continue
		}
		s.st.Seen[key] = b.etag
		if skip {
			continue
		}
		s.st.Sequencer++
		ev := s.blobCreated(name, b, s.st.Sequencer, now)
		for _, sub := range s.opts.Subscriptions {
			if !sub.matches(ev.Subject) {
				continue
			}
			p := &pending{ID: newUUID(), Subscription: sub.Name, Event: render(ev, sub.Schema), Published: now}
			s.st.Outbox[p.ID] = p
			newPending = append(newPending, p)
			s.stats.Published++
		}
	}
	prefix := name + "/"
	for key := range s.st.Seen {
		if strings.HasPrefix(key, prefix) && !present[key] {
			delete(s.st.Seen, key) // deleted: a re-upload is a new blob
		}
	}
	for _, p := range newPending {
		s.queues[p.Subscription].push(p)
	}
	s.mu.Unlock()
	if len(newPending) > 0 || skip {
		s.markDirty()
	}
	for _, p := range newPending {
		s.log.Debug("eventgrid: published", "subscription", p.Subscription, "id", p.ID)
	}
	return nil
}

// blobURL escapes each path segment but keeps the slashes, like the url
// field of real events.
func blobURL(containerURL, name string) string {
	segs := strings.Split(name, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.TrimSuffix(containerURL, "/") + "/" + strings.Join(segs, "/")
}

func normalizeETag(e string) string {
	return strings.Trim(strings.TrimSpace(e), `"`)
}

// Event is an Event Grid schema event.
type Event struct {
	Topic           string    `json:"topic"`
	Subject         string    `json:"subject"`
	EventType       string    `json:"eventType"`
	EventTime       string    `json:"eventTime"`
	ID              string    `json:"id"`
	Data            BlobEvent `json:"data"`
	DataVersion     string    `json:"dataVersion"`
	MetadataVersion string    `json:"metadataVersion"`
}

// BlobEvent is the data of Microsoft.Storage.BlobCreated.
type BlobEvent struct {
	API                string             `json:"api"`
	ClientRequestID    string             `json:"clientRequestId"`
	RequestID          string             `json:"requestId"`
	ETag               string             `json:"eTag"`
	ContentType        string             `json:"contentType"`
	ContentLength      int64              `json:"contentLength"`
	BlobType           string             `json:"blobType"`
	URL                string             `json:"url"`
	Sequencer          string             `json:"sequencer"`
	StorageDiagnostics StorageDiagnostics `json:"storageDiagnostics"`
}

// StorageDiagnostics is data.storageDiagnostics.
type StorageDiagnostics struct {
	BatchID string `json:"batchId"`
}

// cloudEvent is the CloudEvents 1.0 rendering.
type cloudEvent struct {
	Source      string    `json:"source"`
	Subject     string    `json:"subject"`
	Type        string    `json:"type"`
	Time        string    `json:"time"`
	ID          string    `json:"id"`
	Data        BlobEvent `json:"data"`
	SpecVersion string    `json:"specversion"`
}

func (s *Server) blobCreated(containerName string, b blobInfo, seq uint64, now time.Time) Event {
	return Event{
		Topic:     s.topic,
		Subject:   "/blobServices/default/containers/" + containerName + "/blobs/" + b.name,
		EventType: BlobCreated,
		EventTime: now.Format("2006-01-02T15:04:05.0000000Z"),
		ID:        newUUID(),
		Data: BlobEvent{
			API:                b.api,
			ClientRequestID:    newUUID(),
			RequestID:          newUUID(),
			ETag:               `"` + b.etag + `"`,
			ContentType:        b.contentType,
			ContentLength:      b.length,
			BlobType:           b.blobType,
			URL:                b.url,
			Sequencer:          fmt.Sprintf("%032x", seq),
			StorageDiagnostics: StorageDiagnostics{BatchID: newUUID()},
		},
		DataVersion:     "",
		MetadataVersion: "1",
	}
}

func render(ev Event, schema Schema) json.RawMessage {
	var v any = ev
	if schema == SchemaCloudEvents {
		v = cloudEvent{Source: ev.Topic, Subject: ev.Subject, Type: ev.EventType, Time: ev.EventTime, ID: ev.ID, Data: ev.Data, SpecVersion: "1.0"}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimRight(b.Bytes(), "\n")
}

// queue is an unbounded FIFO of pending deliveries.
type queue struct {
	mu    sync.Mutex
	items []*pending
	ready chan struct{} // has a token while items is non-empty
}

func newQueue() *queue { return &queue{ready: make(chan struct{}, 1)} }

func (q *queue) push(p *pending) {
	q.mu.Lock()
	q.items = append(q.items, p)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *queue) pop(ctx context.Context) (*pending, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			p := q.items[0]
			q.items[0] = nil
			q.items = q.items[1:]
			more := len(q.items) > 0
			q.mu.Unlock()
			if more {
				select {
				case q.ready <- struct{}{}:
				default:
				}
			}
			return p, true
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// deliverLoop is one delivery worker of a subscription.
func (s *Server) deliverLoop(ctx context.Context, sub Subscription, q *queue) {
	v := s.validator(sub)
	for {
		p, ok := q.pop(ctx)
		if !ok {
			return
		}
		if err := v.ensure(ctx, s, sub); err != nil {
			return // ctx cancelled; the event stays in the outbox
		}
		s.attempt(ctx, sub, q, p)
	}
}

// validator performs a subscription's handshake once per run.
type validator struct {
	mu   sync.Mutex
	done bool
}

func (s *Server) validator(sub Subscription) *validator {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.validators == nil {
		s.validators = map[string]*validator{}
	}
	v := s.validators[sub.Name]
	if v == nil {
		v = &validator{}
		s.validators[sub.Name] = v
	}
	return v
}

func (v *validator) ensure(ctx context.Context, s *Server, sub Subscription) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	delay := s.opts.RetryDelay
	for !v.done {
		err := s.handshake(ctx, sub)
		if err == nil {
			v.done = true
			s.log.Info("eventgrid: subscription validated", "subscription", sub.Name, "schema", sub.Schema)
			break
		}
		s.log.Warn("eventgrid: subscription validation failed; retrying", "subscription", sub.Name, "err", redact(err.Error()), "retryIn", delay)
		if !sleepCtx(ctx, delay) {
			return ctx.Err()
		}
		delay = min(delay*2, s.opts.MaxRetryDelay)
	}
	return nil
}

// handshake is the synchronous SubscriptionValidation handshake (Event Grid
// schema) or the CloudEvents OPTIONS abuse-protection handshake.
func (s *Server) handshake(ctx context.Context, sub Subscription) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.DeliveryTimeout)
	defer cancel()
	if sub.Schema == SchemaCloudEvents {
		req, err := http.NewRequestWithContext(ctx, http.MethodOptions, sub.Endpoint, nil)
		if err != nil {
			return err
		}
		req.Header.Set("WebHook-Request-Origin", "eventgrid.azure.net")
		req.Header.Set("WebHook-Request-Rate", "120")
		resp, err := s.http.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		allowed := resp.Header.Get("WebHook-Allowed-Origin")
		if resp.StatusCode != http.StatusOK || (allowed != "*" && !strings.EqualFold(allowed, "eventgrid.azure.net")) {
			return fmt.Errorf("cloudevents handshake: status %d, WebHook-Allowed-Origin %q", resp.StatusCode, allowed)
		}
		return nil
	}
	code := newUUID()
	ev := []map[string]any{{
		"id":              newUUID(),
		"topic":           s.topic,
		"subject":         "",
		"data":            map[string]string{"validationCode": code},
		"eventType":       "Microsoft.EventGrid.SubscriptionValidationEvent",
		"eventTime":       time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z"),
		"metadataVersion": "1",
		"dataVersion":     "2",
	}}
	body, _ := json.Marshal(ev)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.Endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("aeg-event-type", "SubscriptionValidation")
	req.Header.Set("aeg-subscription-name", strings.ToUpper(sub.Name))
	req.Header.Set("aeg-delivery-count", "0")
	req.Header.Set("aeg-data-version", "2")
	req.Header.Set("aeg-metadata-version", "1")
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("validation: status %d (Event Grid requires 200)", resp.StatusCode)
	}
	var vr struct {
		ValidationResponse string `json:"validationResponse"`
	}
	if err := json.Unmarshal(rb, &vr); err != nil || vr.ValidationResponse != code {
		return fmt.Errorf("validation: response %q does not echo the validation code", rb)
	}
	return nil
}

// attempt delivers p once and schedules a retry, records success, or dead-letters.
func (s *Server) attempt(ctx context.Context, sub Subscription, q *queue, p *pending) {
	status, err := s.post(ctx, sub, p)
	if ctx.Err() != nil {
		return // shutting down; still in the outbox
	}
	s.mu.Lock()
	p.Attempts++
	attempts := p.Attempts
	s.mu.Unlock()
	outcome := fmt.Sprintf("status %d", status)
	if err != nil {
		outcome = redact(err.Error())
	}
	if err == nil && status >= 200 && status <= 204 {
		s.mu.Lock()
		delete(s.st.Outbox, p.ID)
		s.stats.Delivered++
		s.mu.Unlock()
		s.markDirty()
		s.log.Debug("eventgrid: delivered", "subscription", sub.Name, "id", p.ID, "attempts", attempts)
		return
	}
	noRetry := err == nil && (status == 400 || status == 413 || status == 401 || status == 403)
	if noRetry || attempts >= s.opts.MaxDeliveryAttempts {
		reason := "MaxDeliveryAttemptsExceeded"
		if noRetry {
			reason = "DeliveryFailed"
		}
		s.deadLetter(sub, p, reason, outcome, status)
		return
	}
	delay := s.retryDelay(attempts)
	s.mu.Lock()
	s.stats.Retried++
	s.mu.Unlock()
	s.markDirty()
	s.log.Warn("eventgrid: delivery failed; will retry", "subscription", sub.Name, "id", p.ID,
		"attempt", attempts, "outcome", outcome, "retryIn", delay)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if sleepCtx(ctx, delay) {
			q.push(p)
		}
	}()
}

func (s *Server) retryDelay(attempts int) time.Duration {
	d := float64(s.opts.RetryDelay) * math.Pow(2, float64(attempts-1))
	d = min(d, float64(s.opts.MaxRetryDelay))
	d *= 0.8 + 0.4*mrand.Float64() // jitter, as Event Grid's schedule has
	return time.Duration(d)
}

func (s *Server) post(ctx context.Context, sub Subscription, p *pending) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.DeliveryTimeout)
	defer cancel()
	body := append(append([]byte("["), p.Event...), ']')
	ct := "application/json"
	if sub.Schema == SchemaCloudEvents {
		body, ct = p.Event, "application/cloudevents+json; charset=utf-8"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.Endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	attempts := p.Attempts
	s.mu.Unlock()
	req.Header.Set("Content-Type", ct)
	req.Header.Set("aeg-event-type", "Notification")
	req.Header.Set("aeg-subscription-name", strings.ToUpper(sub.Name))
	req.Header.Set("aeg-delivery-count", fmt.Sprint(attempts))
	req.Header.Set("aeg-data-version", "")
	req.Header.Set("aeg-metadata-version", "1")
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// deadLetter records an undeliverable event like Event Grid's dead-letter blob.
func (s *Server) deadLetter(sub Subscription, p *pending, reason, outcome string, status int) {
	s.mu.Lock()
	attempts := p.Attempts
	s.mu.Unlock()
	// Count and forget the event only once its record is written.
	defer func() {
		s.mu.Lock()
		delete(s.st.Outbox, p.ID)
		s.stats.DeadLettered++
		s.mu.Unlock()
		s.markDirty()
	}()
	rec := map[string]any{
		"event":                   p.Event,
		"deadLetterReason":        reason,
		"deliveryAttempts":        attempts,
		"lastDeliveryOutcome":     outcome,
		"lastHttpStatusCode":      status,
		"publishTime":             p.Published.Format(time.RFC3339Nano),
		"lastDeliveryAttemptTime": time.Now().UTC().Format(time.RFC3339Nano),
		"subscription":            strings.ToUpper(sub.Name),
	}
	s.log.Error("eventgrid: event dead-lettered", "subscription", sub.Name, "id", p.ID, "reason", reason,
		"attempts", attempts, "outcome", outcome)
	if s.opts.DataDir == "" {
		return
	}
	line, _ := json.Marshal(rec)
	path := filepath.Join(s.opts.DataDir, "deadletter", strings.ToUpper(sub.Name)+".jsonl")
	if err := appendLine(path, line); err != nil {
		s.log.Error("eventgrid: write dead letter", "err", err)
	}
}

// DeadLetters returns the dead-letter records of a subscription (from DataDir).
func (s *Server) DeadLetters(subscription string) ([]json.RawMessage, error) {
	if s.opts.DataDir == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(filepath.Join(s.opts.DataDir, "deadletter", strings.ToUpper(subscription)+".jsonl"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	var out []json.RawMessage
	for _, l := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		if len(l) > 0 {
			out = append(out, json.RawMessage(l))
		}
	}
	return out, nil
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

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func appendLine(path string, line []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
