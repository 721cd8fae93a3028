package store

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// DefaultMaxMessageSize is the official emulator's fixed message size limit.
const DefaultMaxMessageSize = 256 * 1024

// DeadLetterSuffix is appended to a queue or subscription path to address
// its dead-letter subqueue ("transcode/$DeadLetterQueue"). Matched
// ignoring case.
const DeadLetterSuffix = "/$DeadLetterQueue"

// Options configure a Store. The zero value is an in-memory store with
// [DefaultConfig].
type Options struct {
	// Dir holds the append-only log. Empty means in memory only.
	Dir string
	// Config lists the queues. Nil means [DefaultConfig]. It is validated
	// (and defaults filled in) by Open.
	Config *Config
	// Now is the clock; nil means time.Now. Tests inject a fake clock;
	// timers still run on real (or synctest) time and re-check Now when
	// they fire, and every operation applies due expiries lazily.
	Now func() time.Time
	// Logger receives recovery and compaction events. Nil discards.
	Logger *slog.Logger
	// MaxMessageSize bounds one message body; 0 means 256 KB.
	MaxMessageSize int
	// MaxQueueBytes bounds the bodies held by one queue (active, deferred,
	// scheduled and dead-lettered); 0 means no limit.
	MaxQueueBytes int64
	// SyncSettlements makes Complete, Abandon, DeadLetter, Defer and
	// ReceiveDeferred wait until their log records are on disk. By default
	// they return at once; their records are written at once and synced
	// by the next Send's fsync or within 10 ms, whichever comes first. A
	// crash in between can only redeliver a message, never lose one.
	SyncSettlements bool
	// CompactMinBytes is the log size below which the log is never
	// compacted; 0 means 64 MiB. The log is rewritten as a snapshot when it
	// is at least this big and at least four times the live data.
	CompactMinBytes int64
}

// Store holds every queue and topic of one namespace. It is safe for
// concurrent use.
type Store struct {
	opts       Options
	now        func() time.Time
	log        *slog.Logger
	queues     map[string]*queue // queues and subscriptions, by lower-case path
	order      []*queue          // sorted by key: the lock order
	topics     map[string]*topic // by lower-case name
	topicOrder []*topic          // sorted by key: locked before any queue
	wal        *wal              // nil in memory

	closeOnce sync.Once
	closed    chan struct{}
}

// Open creates a store. With Options.Dir set it recovers the state from
// the log in that directory (creating it if needed), tolerating a torn last
// record, and starts the log writer.
func Open(opts Options) (*Store, error) {
	cfg := opts.Config
	if cfg == nil {
		cfg = DefaultConfig()
	} else {
		cfg = cfg.Clone()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	opts.Config = cfg
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	if opts.CompactMinBytes <= 0 {
		opts.CompactMinBytes = 64 << 20
	}
	s := &Store{
		opts:   opts,
		now:    opts.Now,
		log:    opts.Logger,
		queues: map[string]*queue{},
		topics: map[string]*topic{},
		closed: make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, qc := range cfg.Queues {
		q := newQueue(s, qc)
		s.queues[strings.ToLower(qc.Name)] = q
		s.order = append(s.order, q)
	}
	for _, tc := range cfg.Topics {
		t, err := newTopic(s, tc)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		s.topics[t.key] = t
		s.topicOrder = append(s.topicOrder, t)
		for _, sub := range t.subs {
			s.queues[sub.q.key] = sub.q
			s.order = append(s.order, sub.q)
		}
	}
	sort.Slice(s.topicOrder, func(i, j int) bool { return s.topicOrder[i].key < s.topicOrder[j].key })
	sort.Slice(s.order, func(i, j int) bool { return s.order[i].key < s.order[j].key })
	if opts.Dir != "" {
		w, err := openWAL(s, opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", opts.Dir, err)
		}
		s.wal = w
	}
	// Apply what fell due while the store was down and start the timers.
	for _, q := range s.order {
		if now, err := q.begin(); err == nil {
			q.end(now)
		}
	}
	return s, nil
}

// Close stops the timers, writes and syncs pending log records and closes
// the log. Operations after Close fail with ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		for _, q := range s.order {
			q.mu.Lock()
			q.closed = true
			if q.timer != nil {
				q.timer.Stop()
			}
			for i := range q.subs {
				q.subs[i].signal()
			}
			q.mu.Unlock()
		}
		if s.wal != nil {
			err = s.wal.close()
		}
	})
	return err
}

// Queue returns the queue or subscription at path, or its dead-letter
// subqueue when path ends in "/$DeadLetterQueue". A subscription's path is
// "<topic>/Subscriptions/<name>". Paths ignore case and a leading or
// trailing "/". A topic or an unknown path gives ErrNotFound. The returned
// handle is cheap and stable: the same path always gives the same *Queue.
func (s *Store) Queue(path string) (*Queue, error) {
	e, err := s.Entity(path)
	if err != nil {
		return nil, err
	}
	if e.Queue == nil {
		return nil, fmt.Errorf("queue %q: %w", path, ErrNotFound)
	}
	return e.Queue, nil
}

// Topic returns the topic named name (ignoring case); ErrNotFound if there
// is none.
func (s *Store) Topic(name string) (*Topic, error) {
	t, ok := s.topics[entityKey(name)]
	if !ok {
		return nil, fmt.Errorf("topic %q: %w", name, ErrNotFound)
	}
	return &t.h, nil
}

// EntityKind says what an entity path names.
type EntityKind int

// Entity kinds.
const (
	KindQueue EntityKind = iota + 1
	KindTopic
	KindSubscription
)

func (k EntityKind) String() string {
	switch k {
	case KindQueue:
		return "queue"
	case KindTopic:
		return "topic"
	case KindSubscription:
		return "subscription"
	}
	return "unknown"
}

// Entity is what an entity path resolves to.
type Entity struct {
	// Kind is the kind of the entity the path names, or of the entity
	// owning the dead-letter subqueue it names.
	Kind EntityKind
	// DeadLetter is true for "<queue or subscription>/$DeadLetterQueue".
	DeadLetter bool
	// Queue receives: the queue, the subscription or the dead-letter
	// subqueue. Nil for a topic.
	Queue *Queue
	// Topic is the topic, or the topic of a subscription (or of its
	// dead-letter subqueue).
	Topic *Topic
}

// Entity resolves an entity path: "<queue>", "<topic>",
// "<topic>/Subscriptions/<subscription>", and "<queue or
// subscription>/$DeadLetterQueue". Paths ignore case and a leading or
// trailing "/". This is the one place that maps paths to entities; an
// unknown path gives ErrNotFound.
func (s *Store) Entity(path string) (Entity, error) {
	key := entityKey(path)
	dlq := false
	if strings.HasSuffix(key, strings.ToLower(DeadLetterSuffix)) {
		key = strings.TrimSuffix(key, strings.ToLower(DeadLetterSuffix))
		dlq = true
	}
	if q, ok := s.queues[key]; ok {
		e := Entity{Kind: KindQueue, DeadLetter: dlq, Queue: &q.handles[subMain]}
		if dlq {
			e.Queue = &q.handles[subDLQ]
		}
		if q.topic != nil {
			e.Kind = KindSubscription
			e.Topic = &q.topic.h
		}
		return e, nil
	}
	if t, ok := s.topics[key]; ok && !dlq {
		return Entity{Kind: KindTopic, Topic: &t.h}, nil
	}
	return Entity{}, fmt.Errorf("entity %q: %w", path, ErrNotFound)
}

func entityKey(path string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(path, "/"), "/"))
}

// Queues returns the configured queue names in order (not subscriptions).
func (s *Store) Queues() []string {
	var names []string
	for _, q := range s.order {
		if q.topic == nil {
			names = append(names, q.cfg.Name)
		}
	}
	return names
}

// Topics returns the configured topic names in order.
func (s *Store) Topics() []string {
	names := make([]string, 0, len(s.topicOrder))
	for _, t := range s.topicOrder {
		names = append(names, t.cfg.Name)
	}
	return names
}

// Config returns the validated configuration (defaults filled in).
func (s *Store) Config() Config { return *s.opts.Config }

// Sync waits until every change made so far is on disk. In memory it
// returns at once.
func (s *Store) Sync(ctx context.Context) error {
	if s.wal == nil {
		return nil
	}
	return s.wal.wait(ctx, s.wal.barrier())
}

// Compact rewrites the log as a snapshot now, whatever its size. The
// writer also does this by itself when the log has grown (see
// Options.CompactMinBytes). In memory it does nothing.
func (s *Store) Compact(ctx context.Context) error {
	if s.wal == nil {
		return nil
	}
	reply := make(chan error, 1)
	select {
	case s.wal.force <- reply:
	case <-s.wal.stopped:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// LockToken identifies one lock on one message: a random (version 4) UUID
// in RFC 4122 byte order, as carried by the AMQP uuid type. Delivery tags
// use the .NET GUID layout; see [LockToken.DotNetBytes].
type LockToken [16]byte

// String formats the token as 8-4-4-4-12 hex.
func (t LockToken) String() string { return uuid.UUID(t).String() }

// DotNetBytes returns the token in .NET Guid.ToByteArray layout (bytes
// 0–3 reversed, 4↔5 and 6↔7 swapped), the layout of a PeekLock delivery tag.
func (t LockToken) DotNetBytes() [16]byte {
	b := t
	b[0], b[1], b[2], b[3] = t[3], t[2], t[1], t[0]
	b[4], b[5] = t[5], t[4]
	b[6], b[7] = t[7], t[6]
	return b
}

// LockTokenFromDotNet converts a .NET-layout delivery tag back to a token.
func LockTokenFromDotNet(b [16]byte) LockToken {
	return LockToken(LockToken(b).DotNetBytes())
}

// NewUUID returns a random version-4 UUID in RFC byte order; the engine may
// use it for missing message-ids.
func NewUUID() LockToken { return LockToken(uuid.New()) }
