package eventgrid

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

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
		return s.handshakeCloudEvents(ctx, sub)
	}
	return s.handshakeEventGrid(ctx, sub)
}

// handshakeCloudEvents is CloudEvents' OPTIONS abuse protection: the
// endpoint must allow Event Grid's origin.
func (s *Server) handshakeCloudEvents(ctx context.Context, sub Subscription) error {
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

// handshakeEventGrid posts a SubscriptionValidationEvent; the endpoint must
// answer 200 and echo the validation code.
func (s *Server) handshakeEventGrid(ctx context.Context, sub Subscription) error {
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
