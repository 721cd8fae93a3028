package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ffpipe/ffpipe/internal/events"
	"github.com/ffpipe/ffpipe/internal/queue"
	"github.com/ffpipe/ffpipe/internal/records"
)

// Outbox keeps the completion events whose publish failed until Sweep
// publishes them (records.Index).
type Outbox interface {
	OutboxPut(ctx context.Context, id string, body []byte) error
	OutboxList(ctx context.Context, max int) ([]records.OutboxItem, error)
	OutboxDelete(ctx context.Context, id string) error
}

var _ Outbox = (*records.Index)(nil)

const (
	// publishTimeout bounds one publish: a file's settlement never waits
	// longer for the events topic.
	publishTimeout = 5 * time.Second
	// eventsPause is how long, after a failed publish, events go straight
	// to the outbox: during an outage each file costs one blob write, not
	// a publish timeout.
	eventsPause = 30 * time.Second
	// outboxBatch bounds the events one Sweep run publishes from the outbox.
	outboxBatch = 500
)

// eventsGate remembers a failed publish for eventsPause.
type eventsGate struct {
	mu         sync.Mutex
	pauseUntil time.Time
}

func (g *eventsGate) open(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !now.Before(g.pauseUntil)
}

func (g *eventsGate) pause(now time.Time) {
	g.mu.Lock()
	g.pauseUntil = now.Add(eventsPause)
	g.mu.Unlock()
}

// eventMessage is the Service Bus message of an event: MessageId = event
// id (duplicate detection), and the type, state and key as application
// properties so that subscriptions can filter on them.
func eventMessage(ev events.Event, body []byte) queue.Message {
	return queue.Message{ID: ev.ID, CorrelationID: ev.Data.CorrelationID, Body: body, ContentType: events.ContentType,
		Properties: map[string]any{"type": ev.Type, "state": string(ev.Data.State), "key": ev.Data.Key, "subject": ev.Subject}}
}

// publish sends one event within publishTimeout; a failure pauses
// publishing for eventsPause.
func (a *app) publish(ctx context.Context, ev events.Event, body []byte) error {
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	err := a.d.Events.Send(pctx, eventMessage(ev, body))
	if err != nil {
		a.events.pause(a.now())
	}
	return err
}

// publishEnd publishes the completion event of a terminal record, or keeps
// it in the outbox for Sweep when the topic cannot take it. It fails only
// when neither worked, so that the caller's own retry (the task stays, the
// event or message is delivered again) publishes it: at least once, and
// never in the way of the record.
func (a *app) publishEnd(ctx context.Context, rec records.Record) error {
	if a.d.Events == nil {
		return nil
	}
	log := a.log.With("key", rec.Key, "correlationId", rec.CorrelationID)
	ev, err := events.New(a.account, rec)
	if err != nil {
		log.Error("completion event not built", "err", err)
		return nil
	}
	body, err := json.Marshal(ev)
	if err != nil {
		log.Error("completion event not encoded", "err", err)
		return nil
	}
	if a.events.open(a.now()) {
		err := a.publish(ctx, ev, body)
		if err == nil {
			return nil
		}
		log.Warn("completion event not published; kept in the outbox for Sweep", "id", ev.ID, "err", err)
	}
	if err := a.d.Outbox.OutboxPut(ctx, ev.ID, body); err != nil {
		return fmt.Errorf("completion event %s: neither published nor kept in the outbox: %w", ev.ID, err)
	}
	return nil
}

// drainOutbox publishes the events waiting in the outbox (Sweep). It stops
// at the first failure: the topic is still unavailable, and the next run
// tries again. It returns how many it published.
func (a *app) drainOutbox(ctx context.Context, log *slog.Logger) int {
	if a.d.Events == nil {
		return 0
	}
	items, err := a.d.Outbox.OutboxList(ctx, outboxBatch)
	if err != nil {
		log.Warn("sweep: read the events outbox", "err", err)
	}
	sent := 0
	for _, it := range items {
		ev, err := events.Parse(it.Body)
		if err != nil {
			// Never publishable: keep it for an operator rather than loop.
			log.Error("sweep: unreadable event in the outbox", "id", it.ID, "err", err)
			continue
		}
		if err := a.publish(ctx, ev, it.Body); err != nil {
			log.Warn("sweep: events topic still unavailable; the outbox waits", "waiting", len(items)-sent, "err", err)
			return sent
		}
		if err := a.d.Outbox.OutboxDelete(ctx, it.ID); err != nil {
			// Published; a second publish later is a duplicate the topic drops.
			log.Warn("sweep: published event left in the outbox", "id", it.ID, "err", err)
		}
		sent++
	}
	return sent
}
