package servicebus

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	enc "github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/encoding"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/frames"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/store"
)

// backend is the broker's store.
type backend struct {
	st *store.Store
}

// sendTarget is where a sender link's messages and schedule-message go:
// a queue or a topic.
type sendTarget interface {
	Send(ctx context.Context, msgs []store.Incoming) ([]store.SendResult, error)
	CancelScheduled(ctx context.Context, seqs []int64) error
}

var (
	_ sendTarget = (*store.Queue)(nil)
	_ sendTarget = (*store.Topic)(nil)
)

func openBackend(opts Options, log *slog.Logger) (*backend, error) {
	var cfg *store.Config
	switch c := opts.Config.(type) {
	case nil:
	case *store.Config:
		cfg = c
	case store.Config:
		cfg = &c
	case string:
		if c != "" {
			loaded, err := store.LoadConfig(c)
			if err != nil {
				return nil, err
			}
			cfg = loaded
		}
	default:
		return nil, fmt.Errorf("options.Config is %T, want *store.Config or a path", opts.Config)
	}
	// Settlements return at once; the engine calls sync before it confirms
	// them, so a confirmed settlement survives kill -9 and a burst of
	// settlements shares one disk sync.
	st, err := store.Open(store.Options{Dir: opts.DataDir, Config: cfg, Logger: log.With("component", "store"),
		MaxMessageSize: MaxMessageSize})
	if err != nil {
		return nil, err
	}
	return &backend{st: st}, nil
}

func (b *backend) Close() error { return b.st.Close() }

// subscriptions lists every topic's subscription paths, for the start-up
// log ("<topic>/Subscriptions/<name>").
func (b *backend) subscriptions() []string {
	var out []string
	for _, name := range b.st.Topics() {
		if t, err := b.st.Topic(name); err == nil {
			out = append(out, t.Subscriptions()...)
		}
	}
	return out
}

// sync waits until every change so far is on disk (no-op in memory).
func (b *backend) sync(ctx context.Context) error { return b.st.Sync(ctx) }

// nodePath turns a link address into the path of a node in the namespace.
// Clients name nodes relatively ("q", "$cbs", "q/$management") or, like the
// Python SDK, absolutely ("amqps://host/q", "sb://host:5671/q/$management"):
// an absolute address loses its scheme and host. Surrounding slashes go;
// case is kept for messages, and lookups ignore it.
func nodePath(address string) string {
	if _, rest, ok := strings.Cut(address, "://"); ok {
		_, path, _ := strings.Cut(rest, "/")
		address = path
	}
	return strings.Trim(address, "/")
}

// exists reports whether an audience path (lower case, see audiencePath)
// names the namespace or an entity, possibly with a /$management suffix.
func (b *backend) exists(path string) bool {
	path = strings.TrimSuffix(path, mgmtSuffix)
	if path == "" {
		return true
	}
	_, e := b.resolveEntity(path, "")
	return e == nil
}

// resolveEntity maps an entity path (after nodePath, without a
// /$management suffix) to what a link works on, through the store's one
// resolver (store.Store.Entity). It answers with the AMQP error the real
// service sends when the path names nothing the broker serves. ns is the
// namespace host used in error texts.
func (b *backend) resolveEntity(path, ns string) (store.Entity, *frames.Error) {
	e, err := b.st.Entity(path)
	if err != nil {
		return store.Entity{}, &frames.Error{Condition: condNotFound,
			Description: fmt.Sprintf("The messaging entity 'sb://%s/%s' could not be found.", ns, path)}
	}
	return e, nil
}

// checkUse refuses a link that uses an entity the wrong way round with
// amqp:not-allowed: a sender on a subscription or a dead-letter subqueue,
// a receiver on a topic (the real service's text for that one; see
// docs/servicebus-topics.md).
func checkUse(e store.Entity, kind linkKind, path string) *frames.Error {
	switch {
	case kind == kindEntityIn && e.DeadLetter:
		return &frames.Error{Condition: condNotAllowed, Description: "sending to a dead-letter subqueue is not allowed"}
	case kind == kindEntityIn && e.Kind == store.KindSubscription:
		return &frames.Error{Condition: condNotAllowed, Description: fmt.Sprintf(
			"Cannot send to a subscription; send to its topic '%s' instead of '%s'.", e.Topic.Name(), path)}
	case kind == kindEntityOut && e.Kind == store.KindTopic:
		return &frames.Error{Condition: condNotAllowed, Description: fmt.Sprintf(
			"Cannot open a Topic client for entity type Subscriber. Receive from a subscription ('%s/Subscriptions/<name>') instead of the topic '%s'.", e.Topic.Name(), path)}
	}
	return nil
}

func mode(peekLock bool) store.ReceiveMode {
	if peekLock {
		return store.PeekLock
	}
	return store.ReceiveAndDelete
}

func take(q *store.Queue, n int, peekLock bool) ([]store.Message, error) {
	return q.Receive(n, mode(peekLock))
}

func release(q *store.Queue, t store.LockToken) error {
	return q.Release(context.Background(), t)
}

func complete(ctx context.Context, q *store.Queue, t store.LockToken) error {
	return q.Complete(ctx, t)
}

func abandon(ctx context.Context, q *store.Queue, t store.LockToken, props enc.Map) error {
	return q.Abandon(ctx, t, modifier(props))
}

func deferMsg(ctx context.Context, q *store.Queue, t store.LockToken, props enc.Map) error {
	return q.Defer(ctx, t, modifier(props))
}

func deadLetter(ctx context.Context, q *store.Queue, t store.LockToken, reason, desc string, props enc.Map) error {
	return q.DeadLetter(ctx, t, reason, desc, modifier(props))
}

func renewLock(_ context.Context, q *store.Queue, t store.LockToken) (time.Time, error) {
	return q.RenewLock(t)
}

func peek(q *store.Queue, from int64, n int) ([]store.Message, error) { return q.Peek(from, n) }

func schedule(ctx context.Context, q sendTarget, ins []store.Incoming) ([]int64, error) {
	res, err := q.Send(ctx, ins)
	if err != nil {
		return nil, err
	}
	seqs := make([]int64, len(res))
	for i, r := range res {
		seqs[i] = r.SequenceNumber
	}
	return seqs, nil
}

func cancelScheduled(ctx context.Context, q sendTarget, seqs []int64) error {
	return q.CancelScheduled(ctx, seqs)
}

func receiveDeferred(ctx context.Context, q *store.Queue, seqs []int64, peekLock bool) ([]store.Message, error) {
	return q.ReceiveDeferred(ctx, seqs, mode(peekLock))
}
