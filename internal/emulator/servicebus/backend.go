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

// backend is the broker's store plus the configuration facts the protocol
// side needs.
type backend struct {
	st     *store.Store
	topics map[string]bool
}

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
	b := &backend{st: st, topics: map[string]bool{}}
	for _, t := range st.Config().Topics {
		b.topics[strings.ToLower(t.Name)] = true
	}
	return b, nil
}

func (b *backend) Close() error { return b.st.Close() }

// sync waits until every change so far is on disk (no-op in memory).
func (b *backend) sync(ctx context.Context) error { return b.st.Sync(ctx) }

// isTopic reports whether path names a configured topic (or something under it).
func (b *backend) isTopic(path string) bool {
	first, _, _ := strings.Cut(strings.ToLower(path), "/")
	return b.topics[first]
}

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

// resolveEntity is the one place that maps an entity path (after nodePath,
// without a /$management suffix) to what a link works on. It answers with
// the AMQP error the real service sends when the path names nothing the
// broker serves. ns is the namespace host used in error texts.
func (b *backend) resolveEntity(path, ns string) (*store.Queue, *frames.Error) {
	if strings.Contains(strings.ToLower(path), "/subscriptions/") || b.isTopic(path) {
		return nil, &frames.Error{Condition: condNotImplemented,
			Description: fmt.Sprintf("topics and subscriptions are not supported by this emulator ('%s')", path)}
	}
	q, err := b.st.Queue(path)
	if err != nil {
		return nil, &frames.Error{Condition: condNotFound,
			Description: fmt.Sprintf("The messaging entity 'sb://%s/%s' could not be found.", ns, path)}
	}
	return q, nil
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

func schedule(ctx context.Context, q *store.Queue, ins []store.Incoming) ([]int64, error) {
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

func cancelScheduled(ctx context.Context, q *store.Queue, seqs []int64) error {
	return q.CancelScheduled(ctx, seqs)
}

func receiveDeferred(ctx context.Context, q *store.Queue, seqs []int64, peekLock bool) ([]store.Message, error) {
	return q.ReceiveDeferred(ctx, seqs, mode(peekLock))
}
