package records

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ffpipe/ffpipe/internal/storage"
)

// The outbox keeps the completion events whose publish failed, one blob
// per event id under outbox/ in the index container, until Sweep
// publishes them: a file's record never waits for the events topic, and no
// event is lost while the topic is unavailable.

const outboxPrefix = "outbox/"

// OutboxItem is one event waiting to be published.
type OutboxItem struct {
	ID   string
	Body []byte
}

// OutboxPut keeps an event's body under its id (a second put of the same
// id is the same event).
func (x *Index) OutboxPut(ctx context.Context, id string, body []byte) error {
	if id == "" || strings.Contains(id, "/") {
		return fmt.Errorf("outbox: bad event id %q", id)
	}
	if err := x.blobs.Put(ctx, x.container, outboxPrefix+id, body, "application/cloudevents+json", nil); err != nil {
		return fmt.Errorf("outbox put %s: %w", id, err)
	}
	return nil
}

// OutboxList returns up to max waiting events, oldest names first.
func (x *Index) OutboxList(ctx context.Context, max int) ([]OutboxItem, error) {
	var names []string
	err := x.blobs.List(ctx, x.container, outboxPrefix, func(it storage.Item) bool {
		names = append(names, it.Name)
		return len(names) < max
	})
	if err != nil {
		return nil, fmt.Errorf("outbox list: %w", err)
	}
	out := make([]OutboxItem, 0, len(names))
	for _, name := range names {
		b, _, err := x.blobs.GetWithETag(ctx, x.container, name)
		if errors.Is(err, storage.ErrNotFound) {
			continue // published by another instance meanwhile
		}
		if err != nil {
			return out, fmt.Errorf("outbox read %s: %w", name, err)
		}
		out = append(out, OutboxItem{ID: strings.TrimPrefix(name, outboxPrefix), Body: b})
	}
	return out, nil
}

// OutboxDelete removes a published event.
func (x *Index) OutboxDelete(ctx context.Context, id string) error {
	err := x.blobs.Delete(ctx, x.container, outboxPrefix+id)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("outbox delete %s: %w", id, err)
	}
	return nil
}
