// Package queue sends request messages to the Service Bus queue with the
// properties duplicate detection and tracing rely on: MessageId = key,
// content type application/json, a correlation id and a few application
// properties for operators.
package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/ffpipe/ffpipe/internal/secret"
)

// ContentType of every request message.
const ContentType = "application/json"

// Message is one request message.
type Message struct {
	// ID is the request key: the MessageId, so Service Bus duplicate
	// detection collapses repeated sends of the same work.
	ID string
	// CorrelationID follows the file through logs, task and record.
	CorrelationID string
	// Body is the JSON request.
	Body []byte
	// Properties become application properties (strings, numbers, bools).
	Properties map[string]any
	// NotBefore, when set, schedules the message: it becomes receivable at
	// that time (Service Bus ScheduledEnqueueTime).
	NotBefore time.Time
	// ContentType overrides ContentType (completion events are
	// application/cloudevents+json).
	ContentType string
}

// Sender sends to one queue. It is safe for concurrent use.
type Sender struct {
	client *azservicebus.Client
	queue  string

	once   sync.Once
	sender *azservicebus.Sender
	err    error
}

// NewFromConnectionString connects with a connection string (the local
// stand-in, or SAS in Azure).
func NewFromConnectionString(cs, queue string) (*Sender, error) {
	return NewFromConnectionStringOptions(cs, queue, nil)
}

// QuickRetries are client options for a sender that must not hold its
// caller up: one retry after 200 ms (the SDK's default retries for
// minutes). The completion-events publisher uses them and falls back on
// its outbox.
var QuickRetries = &azservicebus.ClientOptions{RetryOptions: azservicebus.RetryOptions{MaxRetries: 1, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: time.Second}}

// NewFromConnectionStringOptions is NewFromConnectionString with client
// options (nil: the SDK's defaults).
func NewFromConnectionStringOptions(cs, queue string, o *azservicebus.ClientOptions) (*Sender, error) {
	c, err := azservicebus.NewClientFromConnectionString(cs, o)
	if err != nil {
		return nil, fmt.Errorf("service bus client: %s", secret.Redact(err.Error()))
	}
	return &Sender{client: c, queue: queue}, nil
}

// NewWithCredential connects to <ns>.servicebus.windows.net with an Entra
// credential (the managed identity).
func NewWithCredential(namespace, queue string, cred azcore.TokenCredential) (*Sender, error) {
	return NewWithCredentialOptions(namespace, queue, cred, nil)
}

// NewWithCredentialOptions is NewWithCredential with client options.
func NewWithCredentialOptions(namespace, queue string, cred azcore.TokenCredential, o *azservicebus.ClientOptions) (*Sender, error) {
	c, err := azservicebus.NewClient(namespace, cred, o)
	if err != nil {
		return nil, fmt.Errorf("service bus client: %w", err)
	}
	return &Sender{client: c, queue: queue}, nil
}

func (s *Sender) get() (*azservicebus.Sender, error) {
	s.once.Do(func() {
		s.sender, s.err = s.client.NewSender(s.queue, nil)
	})
	return s.sender, s.err
}

// Send sends one message. Every error is worth a retry by the caller.
func (s *Sender) Send(ctx context.Context, m Message) error {
	if m.ID == "" {
		return errors.New("send message: empty message id")
	}
	snd, err := s.get()
	if err != nil {
		return fmt.Errorf("send message %s: %w", m.ID, err)
	}
	msg := &azservicebus.Message{
		MessageID:             to.Ptr(m.ID),
		ContentType:           to.Ptr(cmp.Or(m.ContentType, ContentType)),
		Body:                  m.Body,
		ApplicationProperties: m.Properties,
	}
	if m.CorrelationID != "" {
		msg.CorrelationID = to.Ptr(m.CorrelationID)
	}
	if !m.NotBefore.IsZero() {
		msg.ScheduledEnqueueTime = to.Ptr(m.NotBefore.UTC())
	}
	if err := snd.SendMessage(ctx, msg, nil); err != nil {
		return fmt.Errorf("send message %s to %s: %s: %w", m.ID, s.queue, secret.Redact(err.Error()), errSend)
	}
	return nil
}

// errSend keeps the SDK error text (redacted) while giving callers
// something to match; every send failure is transient from their side.
var errSend = errors.New("send failed")

// Close closes the sender and the client.
func (s *Sender) Close(ctx context.Context) error {
	var errs []error
	if s.sender != nil {
		errs = append(errs, s.sender.Close(ctx))
	}
	errs = append(errs, s.client.Close(ctx))
	return errors.Join(errs...)
}
