package servicebus_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"
	"github.com/google/uuid"
)

// goScenarios implement scenarios.json through the Go SDK, in process; the
// JavaScript and Python runners implement the same list.
var goScenarios = map[string]func(t *testing.T, ctx context.Context, c *azservicebus.Client, cs, entity string, spec conformanceSpec){
	"round-trip":             goRoundTrip,
	"batch-100":              goBatch100,
	"abandon":                goAbandon,
	"dead-letter":            goDeadLetter,
	"defer":                  goDefer,
	"renew-lock":             goRenewLock,
	"lock-expiry-to-dlq":     goLockExpiryToDLQ,
	"peek":                   goPeek,
	"schedule-cancel":        goScheduleCancel,
	"duplicate-detection":    goDuplicateDetection,
	"receive-and-delete":     goReceiveAndDelete,
	"oversized-refused":      goOversizedRefused,
	"ttl":                    goTTL,
	"wrong-key-refused":      goWrongKeyRefused,
	"missing-entity-refused": goMissingEntityRefused,
	"topic-fan-out":          goTopicFanOut,
	"topic-filter":           goTopicFilter,
	"subscription-dlq":       goSubscriptionDLQ,
}

// goFirst is the delivery count of a first delivery: the Go SDK adds one to
// the zero-based AMQP header.
const goFirst = 1

func ids(msgs []*azservicebus.ReceivedMessage) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.MessageID
	}
	return out
}

// receiveUpTo receives until n messages arrived or wait ran out.
func receiveUpTo(t *testing.T, ctx context.Context, r *azservicebus.Receiver, n int, wait time.Duration) []*azservicebus.ReceivedMessage {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var out []*azservicebus.ReceivedMessage
	for len(out) < n {
		msgs, err := r.ReceiveMessages(rctx, n-len(out), nil)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			break
		}
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		out = append(out, msgs...)
	}
	return out
}

func expectNone(t *testing.T, ctx context.Context, r *azservicebus.Receiver, wait time.Duration) {
	t.Helper()
	if got := receiveUpTo(t, ctx, r, 1, wait); len(got) != 0 {
		t.Fatalf("got messages %v, want none", ids(got))
	}
}

func eqs(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func send(t *testing.T, ctx context.Context, c *azservicebus.Client, entity string, msgs ...*azservicebus.Message) {
	t.Helper()
	s := sender(t, c, entity)
	for _, m := range msgs {
		if err := s.SendMessage(ctx, m, nil); err != nil {
			t.Fatalf("send %v: %v", m.MessageID, err)
		}
	}
}

func msg(id string) *azservicebus.Message {
	return &azservicebus.Message{Body: []byte(id), MessageID: to(id)}
}

// goValue is the Go value of a typed application property of the spec.
func goValue(t *testing.T, p conformanceProperty) any {
	t.Helper()
	switch p.Type {
	case "string":
		return p.Value.(string)
	case "int":
		return int32(p.Value.(float64))
	case "long":
		return int64(p.Value.(float64))
	case "double":
		return p.Value.(float64)
	case "boolean":
		return p.Value.(bool)
	case "timestamp":
		ts, err := time.Parse(time.RFC3339Nano, p.Value.(string))
		if err != nil {
			t.Fatal(err)
		}
		return ts
	case "binary":
		b, err := base64.StdEncoding.DecodeString(p.Value.(string))
		if err != nil {
			t.Fatal(err)
		}
		return b
	case "uuid":
		return amqp.UUID(uuid.MustParse(p.Value.(string)))
	}
	t.Fatalf("application property %s: unknown type %q", p.Name, p.Type)
	return nil
}

func goRoundTrip(t *testing.T, ctx context.Context, c *azservicebus.Client, _, q string, spec conformanceSpec) {
	rt := spec.RoundTrip
	props := map[string]any{}
	for _, p := range rt.ApplicationProperties {
		props[p.Name] = goValue(t, p)
	}
	ttl := time.Duration(rt.TimeToLiveMs) * time.Millisecond
	send(t, ctx, c, q, &azservicebus.Message{Body: []byte(rt.Body), MessageID: &rt.MessageID, CorrelationID: &rt.CorrelationID,
		Subject: &rt.Subject, ContentType: &rt.ContentType, To: &rt.To, ReplyTo: &rt.ReplyTo, TimeToLive: &ttl, ApplicationProperties: props})
	r := receiver(t, c, q, nil)
	m := receiveN(t, ctx, r, 1)[0]
	eqs(t, "body", string(m.Body), rt.Body)
	for _, f := range []struct {
		name      string
		got, want *string
	}{{"message id", &m.MessageID, &rt.MessageID}, {"correlation id", m.CorrelationID, &rt.CorrelationID}, {"subject", m.Subject, &rt.Subject},
		{"content type", m.ContentType, &rt.ContentType}, {"to", m.To, &rt.To}, {"reply-to", m.ReplyTo, &rt.ReplyTo}} {
		if f.got == nil || *f.got != *f.want {
			t.Fatalf("%s: got %v, want %q", f.name, f.got, *f.want)
		}
	}
	if m.TimeToLive == nil || *m.TimeToLive != ttl {
		t.Fatalf("time to live: got %v, want %v", m.TimeToLive, ttl)
	}
	for _, p := range rt.ApplicationProperties {
		got, want := m.ApplicationProperties[p.Name], goValue(t, p)
		if ts, ok := want.(time.Time); ok {
			if g, ok := got.(time.Time); !ok || !g.Equal(ts) {
				t.Fatalf("application property %s (%s): got %v, want %v", p.Name, p.Type, got, want)
			}
			continue
		}
		eqs(t, fmt.Sprintf("application property %s (%s)", p.Name, p.Type), got, want)
	}
	if m.DeliveryCount != goFirst || m.SequenceNumber == nil || m.EnqueuedTime == nil {
		t.Fatalf("got delivery count %d, sequence number %v, enqueued %v; want %d and both set", m.DeliveryCount, m.SequenceNumber, m.EnqueuedTime, goFirst)
	}
	if err := r.CompleteMessage(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
}

func goBatch100(t *testing.T, ctx context.Context, c *azservicebus.Client, _, q string, _ conformanceSpec) {
	s := sender(t, c, q)
	b, err := s.NewMessageBatch(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]string, 100)
	for i := range want {
		want[i] = fmt.Sprintf("b-%d", i)
		if err := b.AddMessage(msg(want[i]), nil); err != nil {
			t.Fatalf("add message %d: %v", i, err)
		}
	}
	if err := s.SendMessageBatch(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	r := receiver(t, c, q, nil)
	got := receiveUpTo(t, ctx, r, 100, 30*time.Second)
	gotIDs := ids(got)
	slices.Sort(gotIDs)
	slices.Sort(want)
	eqs(t, "received ids", gotIDs, want)
	for _, m := range got {
		if err := r.CompleteMessage(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	expectNone(t, ctx, r, 2*time.Second)
}

func goAbandon(t *testing.T, ctx context.Context, c *azservicebus.Client, _, q string, _ conformanceSpec) {
	send(t, ctx, c, q, msg("ab"))
	r := receiver(t, c, q, nil)
	if err := r.AbandonMessage(ctx, receiveN(t, ctx, r, 1)[0], nil); err != nil {
		t.Fatal(err)
	}
	again := receiveN(t, ctx, r, 1)[0]
	eqs(t, "redelivered id and delivery count", []any{again.MessageID, again.DeliveryCount}, []any{"ab", uint32(goFirst + 1)})
	if err := r.CompleteMessage(ctx, again, nil); err != nil {
		t.Fatal(err)
	}
}

// deadLettered checks the dead-letter queue of an entity holds id with
// reason (and description when not "").
func deadLettered(t *testing.T, ctx context.Context, r *azservicebus.Receiver, id, reason, desc string) {
	t.Helper()
	d := receiveN(t, ctx, r, 1)[0]
	got := []string{d.MessageID, deref(d.DeadLetterReason)}
	want := []string{id, reason}
	if desc != "" {
		got, want = append(got, deref(d.DeadLetterErrorDescription)), append(want, desc)
	}
	eqs(t, "dead-lettered message", got, want)
	if err := r.CompleteMessage(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

var dlq = &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter}

func goDeadLetter(t *testing.T, ctx context.Context, c *azservicebus.Client, _, q string, _ conformanceSpec) {
	send(t, ctx, c, q, msg("dl"))
	r := receiver(t, c, q, nil)
	if err := r.DeadLetterMessage(ctx, receiveN(t, ctx, r, 1)[0], &azservicebus.DeadLetterOptions{Reason: to("bad-input"), ErrorDescription: to("not a video")}); err != nil {
		t.Fatal(err)
	}
	if p, err := r.PeekMessages(ctx, 10, nil); err != nil || len(p) != 0 {
		t.Fatalf("messages left in the queue: got %d (%v), want 0", len(p), err)
	}
	deadLettered(t, ctx, receiver(t, c, q, dlq), "dl", "bad-input", "not a video")
}

func goDefer(t *testing.T, ctx context.Context, c *azservicebus.Client, _, q string, _ conformanceSpec) {
	send(t, ctx, c, q, msg("df"))
	r := receiver(t, c, q, nil)
	m := receiveN(t, ctx, r, 1)[0]
	if err := r.DeferMessage(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	expectNone(t, ctx, r, 2*time.Second)
	d, err := r.ReceiveDeferredMessages(ctx, []int64{*m.SequenceNumber}, nil)
	if err != nil {
		t.Fatal(err)
	}
	eqs(t, "deferred messages", ids(d), []string{"df"})
	if err := r.CompleteMessage(ctx, d[0], nil); err != nil {
		t.Fatal(err)
	}
}

func goRenewLock(t *testing.T, ctx context.Context, c *azservicebus.Client, _, q string, _ conformanceSpec) {
	send(t, ctx, c, q, msg("rl"))
	r := receiver(t, c, q, nil)
	m := receiveN(t, ctx, r, 1)[0]
	first := *m.LockedUntil
	// Renewed within the same millisecond, the lock ends at the same time:
	// renew until it ends later, within the scenario's deadline.
	for !m.LockedUntil.After(first) {
		if err := r.RenewMessageLock(ctx, m, nil); err != nil {
			t.Fatalf("renew lock (first until %v): %v", first, err)
		}
	}
	if err := r.CompleteMessage(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
}

func goLockExpiryToDLQ(t *testing.T, ctx context.Context, c *azservicebus.Client, _, q string, _ conformanceSpec) {
	send(t, ctx, c, q, msg("le"))
	r := receiver(t, c, q, nil)
	for want := uint32(goFirst); want <= goFirst+1; want++ {
		got := receiveUpTo(t, ctx, r, 1, 20*time.Second)
		if len(got) != 1 || got[0].DeliveryCount != want {
			t.Fatalf("delivery %d: got %d messages %v", want, len(got), got)
		}
		// Not settled: the 2 s lock expires.
	}
	deadLettered(t, ctx, receiver(t, c, q, dlq), "le", "MaxDeliveryCountExceeded", "")
}

func goPeek(t *testing.T, ctx context.Context, c *azservicebus.Client, _, q string, _ conformanceSpec) {
	send(t, ctx, c, q, msg("p0"), msg("p1"), msg("p2"))
	r := receiver(t, c, q, nil)
	p, err := r.PeekMessages(ctx, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	peeked := make([]string, len(p))
	for i, m := range p {
		peeked[i] = m.MessageID
	}
	eqs(t, "peeked ids", peeked, []string{"p0", "p1", "p2"})
	got := receiveN(t, ctx, r, 3)
	for _, m := range got {
		if m.DeliveryCount != goFirst {
			t.Fatalf("%s: delivery count %d after peek, want %d", m.MessageID, m.DeliveryCount, goFirst)
		}
		if err := r.CompleteMessage(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	eqs(t, "received after peek", ids(got), []string{"p0", "p1", "p2"})
}

func goScheduleCancel(t *testing.T, ctx context.Context, c *azservicebus.Client, _, q string, _ conformanceSpec) {
	s := sender(t, c, q)
	due := time.Now().Add(3 * time.Second)
	a, err := s.ScheduleMessages(ctx, []*azservicebus.Message{msg("later")}, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ScheduleMessages(ctx, []*azservicebus.Message{msg("soon")}, due, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.CancelScheduledMessages(ctx, a, nil); err != nil {
		t.Fatal(err)
	}
	r := receiver(t, c, q, nil)
	p, err := r.PeekMessages(ctx, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 1 || p[0].MessageID != "soon" {
		t.Fatalf("peeked %d messages, want only soon", len(p))
	}
	if time.Now().Before(due.Add(-500*time.Millisecond)) && p[0].State != azservicebus.MessageStateScheduled {
		t.Fatalf("peeked before it was due: state %v, want scheduled", p[0].State)
	}
	got := receiveUpTo(t, ctx, r, 1, 15*time.Second)
	eqs(t, "received scheduled message", ids(got), []string{"soon"})
	if err := r.CompleteMessage(ctx, got[0], nil); err != nil {
		t.Fatal(err)
	}
	expectNone(t, ctx, r, 2*time.Second)
}

func goDuplicateDetection(t *testing.T, ctx context.Context, c *azservicebus.Client, _, q string, _ conformanceSpec) {
	send(t, ctx, c, q, msg("same"), msg("same"), msg("other"))
	eqs(t, "received ids", ids(receiveUpTo(t, ctx, receiver(t, c, q, nil), 3, 3*time.Second)), []string{"same", "other"})
}

func goReceiveAndDelete(t *testing.T, ctx context.Context, c *azservicebus.Client, _, q string, _ conformanceSpec) {
	send(t, ctx, c, q, msg("r1"), msg("r2"))
	r := receiver(t, c, q, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	eqs(t, "received ids", ids(receiveN(t, ctx, r, 2)), []string{"r1", "r2"})
	if p, err := receiver(t, c, q, nil).PeekMessages(ctx, 10, nil); err != nil || len(p) != 0 {
		t.Fatalf("messages left to peek: got %d (%v), want 0", len(p), err)
	}
}

func goOversizedRefused(t *testing.T, ctx context.Context, c *azservicebus.Client, _, q string, _ conformanceSpec) {
	if err := sender(t, c, q).SendMessage(ctx, &azservicebus.Message{Body: make([]byte, 300*1024)}, nil); !errors.Is(err, azservicebus.ErrMessageTooLarge) {
		t.Fatalf("send 300 KB: got %v, want ErrMessageTooLarge", err)
	}
	if p, err := receiver(t, c, q, nil).PeekMessages(ctx, 10, nil); err != nil || len(p) != 0 {
		t.Fatalf("messages in the queue: got %d (%v), want 0", len(p), err)
	}
}

func goTTL(t *testing.T, ctx context.Context, c *azservicebus.Client, _, q string, _ conformanceSpec) {
	ttl := time.Second
	send(t, ctx, c, q, &azservicebus.Message{Body: []byte("x"), MessageID: to("short"), TimeToLive: &ttl})
	// The expired message moves to the dead-letter queue on its own.
	deadLettered(t, ctx, receiver(t, c, q, dlq), "short", "TTLExpiredException", "")
	expectNone(t, ctx, receiver(t, c, q, nil), time.Second)
}

// refusedGo sends with no retries and an operation deadline of
// refusalTimeoutMs: only the broker's answer gives the wanted code in time.
func refusedGo(t *testing.T, cs, entity string, spec conformanceSpec, code azservicebus.Code) {
	c, err := azservicebus.NewClientFromConnectionString(cs, &azservicebus.ClientOptions{RetryOptions: azservicebus.RetryOptions{MaxRetries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(spec.RefusalTimeoutMs)*time.Millisecond)
	defer cancel()
	err = sender(t, c, entity).SendMessage(ctx, msg("x"), nil)
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) || sbErr.Code != code {
		t.Fatalf("got %v, want code %s within %d ms", err, code, spec.RefusalTimeoutMs)
	}
}

func goWrongKeyRefused(t *testing.T, _ context.Context, _ *azservicebus.Client, cs, q string, spec conformanceSpec) {
	bad := regexp.MustCompile(`SharedAccessKey=[^;]*`).ReplaceAllString(cs, "SharedAccessKey=wrong-key")
	if bad == cs {
		t.Fatalf("connection string has no SharedAccessKey to spoil")
	}
	refusedGo(t, bad, q, spec, azservicebus.CodeUnauthorizedAccess)
}

func goMissingEntityRefused(t *testing.T, _ context.Context, _ *azservicebus.Client, cs, q string, spec conformanceSpec) {
	refusedGo(t, cs, q, spec, azservicebus.CodeNotFound)
}

func goTopicFanOut(t *testing.T, ctx context.Context, c *azservicebus.Client, _, topic string, _ conformanceSpec) {
	send(t, ctx, c, topic, msg("f-0"), msg("f-1"), msg("f-2"))
	for _, sub := range []string{"all", "audit"} {
		r := subReceiver(t, c, topic, sub, nil)
		got := receiveN(t, ctx, r, 3)
		eqs(t, "subscription "+sub, ids(got), []string{"f-0", "f-1", "f-2"})
		for _, m := range got {
			if err := r.CompleteMessage(ctx, m, nil); err != nil {
				t.Fatal(err)
			}
		}
		expectNone(t, ctx, r, 500*time.Millisecond)
	}
}

func goTopicFilter(t *testing.T, ctx context.Context, c *azservicebus.Client, _, topic string, _ conformanceSpec) {
	m1 := msg("s-1")
	m1.Subject, m1.ApplicationProperties = to("mp3"), map[string]any{"state": "failed", "attempt": int32(2)}
	m2 := msg("s-2")
	m2.ApplicationProperties = map[string]any{"state": "failed", "attempt": int32(1)}
	m3 := msg("s-3")
	m3.ApplicationProperties = map[string]any{"state": "done", "attempt": int32(3)}
	send(t, ctx, c, topic, m1, m2, m3)
	for _, tt := range []struct {
		sub  string
		want []string
	}{{"retried-failures", []string{"s-1"}}, {"mp3", []string{"s-1"}}, {"all", []string{"s-1", "s-2", "s-3"}}} {
		r := subReceiver(t, c, topic, tt.sub, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
		eqs(t, "subscription "+tt.sub, ids(receiveN(t, ctx, r, len(tt.want))), tt.want)
		expectNone(t, ctx, r, 500*time.Millisecond)
	}
}

func goSubscriptionDLQ(t *testing.T, ctx context.Context, c *azservicebus.Client, _, topic string, _ conformanceSpec) {
	send(t, ctx, c, topic, msg("sd"))
	r := subReceiver(t, c, topic, "all", nil)
	if err := r.DeadLetterMessage(ctx, receiveN(t, ctx, r, 1)[0], &azservicebus.DeadLetterOptions{Reason: to("bad-input"), ErrorDescription: to("not a video")}); err != nil {
		t.Fatal(err)
	}
	deadLettered(t, ctx, subReceiver(t, c, topic, "all", dlq), "sd", "bad-input", "not a video")
	p, err := subReceiver(t, c, topic, "audit", nil).PeekMessages(ctx, 10, nil)
	if err != nil || len(p) != 1 || p[0].MessageID != "sd" {
		t.Fatalf("audit's copy: got %d messages (%v), want sd", len(p), err)
	}
}
