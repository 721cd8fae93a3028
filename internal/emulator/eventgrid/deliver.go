package eventgrid

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

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
