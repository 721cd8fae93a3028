package servicebus_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sbtest"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/store"
)

const queue = "transcode"

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func client(t *testing.T, s *servicebus.Server) *azservicebus.Client {
	t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(s.ConnectionString(), nil)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func sender(t *testing.T, c *azservicebus.Client, q string) *azservicebus.Sender {
	t.Helper()
	s, err := c.NewSender(q, nil)
	if err != nil {
		t.Fatalf("new sender: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func receiver(t *testing.T, c *azservicebus.Client, q string, opts *azservicebus.ReceiverOptions) *azservicebus.Receiver {
	t.Helper()
	r, err := c.NewReceiverForQueue(q, opts)
	if err != nil {
		t.Fatalf("new receiver: %v", err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

// receiveN receives exactly n messages or fails.
func receiveN(t *testing.T, ctx context.Context, r *azservicebus.Receiver, n int) []*azservicebus.ReceivedMessage {
	t.Helper()
	var out []*azservicebus.ReceivedMessage
	for len(out) < n {
		msgs, err := r.ReceiveMessages(ctx, n-len(out), nil)
		if err != nil {
			t.Fatalf("receive: got %d of %d messages: %v", len(out), n, err)
		}
		out = append(out, msgs...)
	}
	return out
}

func cfg(queues ...store.QueueConfig) *store.Config {
	return &store.Config{Queues: queues}
}

func testSendReceiveComplete(t *testing.T, tg target) {
	c := tg.client(t)
	ctx := ctxT(t, 20*time.Second)
	snd := sender(t, c, tg.queue)
	if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte("hello"), MessageID: to("m1")}, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	r := receiver(t, c, tg.queue, nil)
	got := receiveN(t, ctx, r, 1)[0]
	if string(got.Body) != "hello" || got.MessageID != "m1" {
		t.Fatalf("got body %q id %q, want hello m1", got.Body, got.MessageID)
	}
	if got.DeliveryCount != 1 || got.SequenceNumber == nil || got.EnqueuedTime == nil {
		t.Errorf("got delivery count %d seq %v enqueued %v, want 1 and both set", got.DeliveryCount, got.SequenceNumber, got.EnqueuedTime)
	}
	if err := r.CompleteMessage(ctx, got, nil); err != nil {
		t.Fatalf("complete: %v", err)
	}
	peeked, err := r.PeekMessages(ctx, 10, nil)
	if err != nil {
		t.Fatalf("peek: %v", err)
	}
	if len(peeked) != 0 {
		t.Fatalf("after complete: peeked %d messages, want 0", len(peeked))
	}
}

func to[T any](v T) *T { return &v }

func testSendBatchKeepsOrder(t *testing.T, tg target) {
	c := tg.client(t)
	ctx := ctxT(t, 20*time.Second)
	snd := sender(t, c, tg.queue)
	batch, err := snd.NewMessageBatch(ctx, nil)
	if err != nil {
		t.Fatalf("new batch: %v", err)
	}
	const n = 25
	for i := 0; i < n; i++ {
		if err := batch.AddMessage(&azservicebus.Message{Body: []byte(fmt.Sprint(i))}, nil); err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
	}
	if err := snd.SendMessageBatch(ctx, batch, nil); err != nil {
		t.Fatalf("send batch: %v", err)
	}
	r := receiver(t, c, tg.queue, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	got := receiveN(t, ctx, r, n)
	for i, m := range got {
		if want := *got[0].SequenceNumber + int64(i); string(m.Body) != fmt.Sprint(i) || *m.SequenceNumber != want {
			t.Errorf("message %d: got body %q seq %d, want %d and %d", i, m.Body, *m.SequenceNumber, i, want)
		}
		if m.MessageID == "" {
			t.Errorf("message %d: empty MessageID", i)
		}
	}
}

func testMessageFieldsPreserved(t *testing.T, tg target) {
	c := tg.client(t)
	ctx := ctxT(t, 20*time.Second)
	snd := sender(t, c, tg.queue)
	enq := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	in := &azservicebus.Message{
		Body:             []byte{0, 1, 2, 0xff},
		MessageID:        to("id-42"),
		ContentType:      to("application/json"),
		CorrelationID:    to("corr"),
		Subject:          to("subj"),
		To:               to("dest"),
		ReplyTo:          to("reply"),
		ReplyToSessionID: to("rsid"),
		TimeToLive:       to(30 * time.Minute),
		ApplicationProperties: map[string]any{
			"s": "v", "i64": int64(-7), "i32": int32(9), "f": 2.5, "b": true, "t": enq, "bin": []byte("x"), "u8": uint8(3),
		},
	}
	if err := snd.SendMessage(ctx, in, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	r := receiver(t, c, tg.queue, nil)
	got := receiveN(t, ctx, r, 1)[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"Body", string(got.Body), string(in.Body)},
		{"MessageID", got.MessageID, "id-42"},
		{"ContentType", *got.ContentType, "application/json"},
		{"CorrelationID", *got.CorrelationID, "corr"},
		{"Subject", *got.Subject, "subj"},
		{"To", *got.To, "dest"},
		{"ReplyTo", *got.ReplyTo, "reply"},
		{"ReplyToSessionID", *got.ReplyToSessionID, "rsid"},
		{"TimeToLive", *got.TimeToLive, 30 * time.Minute},
		{"DeliveryCount", got.DeliveryCount, uint32(1)},
		{"State", got.State, azservicebus.MessageStateActive},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	for k, want := range in.ApplicationProperties {
		if g := got.ApplicationProperties[k]; fmt.Sprintf("%T %v", g, g) != fmt.Sprintf("%T %v", want, want) {
			t.Errorf("application property %s: got %T %v, want %T %v", k, g, g, want, want)
		}
	}
	if got.EnqueuedTime == nil || time.Since(*got.EnqueuedTime) > time.Minute || got.LockedUntil == nil || !got.LockedUntil.After(time.Now()) {
		t.Errorf("got EnqueuedTime %v LockedUntil %v, want recent and in the future", got.EnqueuedTime, got.LockedUntil)
	}
	if err := r.CompleteMessage(ctx, got, nil); err != nil {
		t.Fatalf("complete: %v", err)
	}
}

func testAnnotatedMessageSectionsPreserved(t *testing.T, tg target) {
	c := tg.client(t)
	ctx := ctxT(t, 20*time.Second)
	snd := sender(t, c, tg.queue)
	msgs := []*azservicebus.AMQPAnnotatedMessage{
		{Body: azservicebus.AMQPAnnotatedMessageBody{Value: "a value body"}, Properties: &azservicebus.AMQPAnnotatedMessageProperties{MessageID: "v"},
			Footer: map[any]any{"f": "foot"}, DeliveryAnnotations: map[any]any{"da": int64(1)}, MessageAnnotations: map[any]any{"custom": "ann"}},
		{Body: azservicebus.AMQPAnnotatedMessageBody{Sequence: [][]any{{"a", int64(1)}}}, Properties: &azservicebus.AMQPAnnotatedMessageProperties{MessageID: "q"}},
		{Body: azservicebus.AMQPAnnotatedMessageBody{Data: [][]byte{[]byte("d1"), []byte("d2")}}, Properties: &azservicebus.AMQPAnnotatedMessageProperties{MessageID: "d"},
			Header: &azservicebus.AMQPAnnotatedMessageHeader{Priority: 7, Durable: true}},
	}
	for _, m := range msgs {
		if err := snd.SendAMQPAnnotatedMessage(ctx, m, nil); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	r := receiver(t, c, tg.queue, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	got := receiveN(t, ctx, r, 3)
	raw := []*azservicebus.AMQPAnnotatedMessage{got[0].RawAMQPMessage, got[1].RawAMQPMessage, got[2].RawAMQPMessage}
	if v := raw[0].Body.Value; v != "a value body" {
		t.Errorf("value body: got %v, want %q", v, "a value body")
	}
	if f := raw[0].Footer["f"]; f != "foot" {
		t.Errorf("footer: got %v, want foot", f)
	}
	if a := raw[0].MessageAnnotations["custom"]; a != "ann" {
		t.Errorf("message annotation: got %v, want ann", a)
	}
	if d := raw[0].DeliveryAnnotations["da"]; d != int64(1) {
		t.Errorf("delivery annotation: got %v, want 1", d)
	}
	if seq := fmt.Sprint(raw[1].Body.Sequence); seq != "[[a 1]]" {
		t.Errorf("sequence body: got %s, want [[a 1]]", seq)
	}
	if d := raw[2].Body.Data; len(d) != 2 || string(d[0]) != "d1" || string(d[1]) != "d2" {
		t.Errorf("data sections: got %q, want [d1 d2]", d)
	}
	if h := raw[2].Header; h == nil || h.Priority != 7 || !h.Durable {
		t.Errorf("header: got %+v, want priority 7 durable", h)
	}
}

func testMessageIDAssigned(t *testing.T, tg target) {
	c := tg.client(t)
	ctx := ctxT(t, 20*time.Second)
	if err := sender(t, c, tg.queue).SendMessage(ctx, &azservicebus.Message{Body: []byte("x")}, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := receiveN(t, ctx, receiver(t, c, tg.queue, nil), 1)[0]
	if got.MessageID == "" {
		t.Fatal("got empty MessageID, want one assigned by the broker")
	}
}

func TestDuplicateDetection(t *testing.T) {
	t.Parallel()
	q := store.DefaultQueueConfig("dedup")
	q.RequiresDuplicateDetection = true
	q.DuplicateDetectionHistoryTimeWindow = time.Minute
	s := sbtest.Start(t, sbtest.WithConfig(cfg(q)))
	c := client(t, s)
	ctx := ctxT(t, 20*time.Second)
	snd := sender(t, c, "dedup")
	for i := 0; i < 3; i++ {
		if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte(fmt.Sprint(i)), MessageID: to("same")}, nil); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte("other"), MessageID: to("other")}, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	r := receiver(t, c, "dedup", nil)
	peeked, err := r.PeekMessages(ctx, 10, nil)
	if err != nil {
		t.Fatalf("peek: %v", err)
	}
	var bodies []string
	for _, m := range peeked {
		bodies = append(bodies, string(m.Body))
	}
	if fmt.Sprint(bodies) != "[0 other]" {
		t.Fatalf("got %v, want [0 other]", bodies)
	}
}

func testSettlement(t *testing.T, tg target) {
	c := tg.client(t)
	ctx := ctxT(t, 30*time.Second)
	snd := sender(t, c, tg.queue)
	for _, b := range []string{"abandon", "deadletter", "defer"} {
		if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte(b), MessageID: to(b)}, nil); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	r := receiver(t, c, tg.queue, nil)
	msgs := receiveN(t, ctx, r, 3)
	if err := r.AbandonMessage(ctx, msgs[0], &azservicebus.AbandonMessageOptions{PropertiesToModify: map[string]any{"why": "retry"}}); err != nil {
		t.Fatalf("abandon: %v", err)
	}
	if err := r.DeadLetterMessage(ctx, msgs[1], &azservicebus.DeadLetterOptions{Reason: to("bad"), ErrorDescription: to("very bad"), PropertiesToModify: map[string]any{"extra": int64(1)}}); err != nil {
		t.Fatalf("dead-letter: %v", err)
	}
	if err := r.DeferMessage(ctx, msgs[2], nil); err != nil {
		t.Fatalf("defer: %v", err)
	}
	// Abandoned: redelivered with the count raised and the property merged.
	again := receiveN(t, ctx, r, 1)[0]
	if string(again.Body) != "abandon" || again.DeliveryCount != 2 || again.ApplicationProperties["why"] != "retry" {
		t.Errorf("after abandon: got %q count %d props %v, want abandon, 2, why=retry", again.Body, again.DeliveryCount, again.ApplicationProperties)
	}
	if err := r.CompleteMessage(ctx, again, nil); err != nil {
		t.Fatalf("complete: %v", err)
	}
	// The lock of a completed message is gone.
	var sbErr *azservicebus.Error
	if err := r.RenewMessageLock(ctx, again, nil); !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeLockLost {
		t.Errorf("renew after complete: got %v, want code %s", err, azservicebus.CodeLockLost)
	}
	// Dead-lettered: in the DLQ with reason and description.
	dlq := receiver(t, c, tg.queue, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	dl := receiveN(t, ctx, dlq, 1)[0]
	if string(dl.Body) != "deadletter" || dl.DeadLetterReason == nil || *dl.DeadLetterReason != "bad" ||
		dl.DeadLetterErrorDescription == nil || *dl.DeadLetterErrorDescription != "very bad" || dl.ApplicationProperties["extra"] != int64(1) {
		t.Errorf("dead-lettered: got %q reason %v desc %v props %v", dl.Body, dl.DeadLetterReason, dl.DeadLetterErrorDescription, dl.ApplicationProperties)
	}
	if err := dlq.CompleteMessage(ctx, dl, nil); err != nil {
		t.Fatalf("complete from DLQ: %v", err)
	}
	// Deferred: only by sequence number, then settled via the management link.
	def, err := r.ReceiveDeferredMessages(ctx, []int64{*msgs[2].SequenceNumber}, nil)
	if err != nil || len(def) != 1 {
		t.Fatalf("receive deferred: got %d messages, %v", len(def), err)
	}
	if string(def[0].Body) != "defer" || def[0].State != azservicebus.MessageStateDeferred {
		t.Errorf("deferred: got %q state %v, want defer, deferred", def[0].Body, def[0].State)
	}
	if err := r.CompleteMessage(ctx, def[0], nil); err != nil {
		t.Fatalf("complete deferred: %v", err)
	}
	if _, err := r.ReceiveDeferredMessages(ctx, []int64{*msgs[2].SequenceNumber}, nil); !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeNotFound {
		t.Errorf("receive completed deferred message: got %v, want code %s", err, azservicebus.CodeNotFound)
	}
	if peeked, err := r.PeekMessages(ctx, 10, nil); err != nil || len(peeked) != 0 {
		t.Errorf("peek after settling all: got %d messages, %v; want 0", len(peeked), err)
	}
}

func testRenewLockAndPeek(t *testing.T, tg target) {
	c := tg.client(t)
	ctx := ctxT(t, 20*time.Second)
	snd := sender(t, c, tg.queue)
	for i := 0; i < 3; i++ {
		if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte(fmt.Sprint(i))}, nil); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	r := receiver(t, c, tg.queue, nil)
	m := receiveN(t, ctx, r, 1)[0]
	before := *m.LockedUntil
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := r.RenewMessageLock(ctx, m, nil); err != nil {
			t.Fatalf("renew: %v", err)
		}
		if m.LockedUntil.After(before) || time.Now().After(deadline) {
			break
		}
	}
	if !m.LockedUntil.After(before) {
		t.Errorf("renew: got LockedUntil %v, want after %v", m.LockedUntil, before)
	}
	peeked, err := r.PeekMessages(ctx, 10, nil)
	if err != nil {
		t.Fatalf("peek: %v", err)
	}
	if len(peeked) != 3 {
		t.Fatalf("peek: got %d messages, want 3 (locked ones included)", len(peeked))
	}
	for i, p := range peeked {
		if *p.SequenceNumber != *peeked[0].SequenceNumber+int64(i) || string(p.Body) != fmt.Sprint(i) {
			t.Errorf("peek %d: got seq %d body %q", i, *p.SequenceNumber, p.Body)
		}
	}
	more, err := r.PeekMessages(ctx, 10, nil)
	if err != nil || len(more) != 0 {
		t.Errorf("second peek: got %d, %v; want 0 (continues after the last)", len(more), err)
	}
	second := *peeked[1].SequenceNumber
	from, err := r.PeekMessages(ctx, 1, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &second})
	if err != nil || len(from) != 1 || *from[0].SequenceNumber != second {
		t.Errorf("peek from %d: got %v, %v", second, from, err)
	}
}

func testScheduleAndCancel(t *testing.T, tg target) {
	c := tg.client(t)
	ctx := ctxT(t, 20*time.Second)
	snd := sender(t, c, tg.queue)
	later := time.Now().Add(time.Hour)
	seqs, err := snd.ScheduleMessages(ctx, []*azservicebus.Message{{Body: []byte("a")}, {Body: []byte("b")}}, later, nil)
	if err != nil || len(seqs) != 2 {
		t.Fatalf("schedule: got %v, %v", seqs, err)
	}
	r := receiver(t, c, tg.queue, nil)
	peeked, err := r.PeekMessages(ctx, 10, nil)
	if err != nil || len(peeked) != 2 || peeked[0].State != azservicebus.MessageStateScheduled {
		t.Fatalf("peek scheduled: got %d messages (%v), want 2 scheduled", len(peeked), err)
	}
	if err := snd.CancelScheduledMessages(ctx, seqs[:1], nil); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	peeked, err = r.PeekMessages(ctx, 10, &azservicebus.PeekMessagesOptions{FromSequenceNumber: to(int64(1))})
	if err != nil || len(peeked) != 1 || *peeked[0].SequenceNumber != seqs[1] {
		t.Fatalf("after cancel: got %d messages (%v), want only seq %d", len(peeked), err, seqs[1])
	}
	// A message scheduled in the near future becomes receivable.
	soon := time.Now().Add(time.Second)
	if _, err := snd.ScheduleMessages(ctx, []*azservicebus.Message{{Body: []byte("soon")}}, soon, nil); err != nil {
		t.Fatalf("schedule soon: %v", err)
	}
	got := receiveN(t, ctx, r, 1)[0]
	if string(got.Body) != "soon" || time.Now().Before(soon.Truncate(time.Millisecond)) {
		t.Errorf("got %q at %v, want soon after %v", got.Body, time.Now(), soon)
	}
}

func TestLockExpiryRedeliversAndMaxDeliveryCount(t *testing.T) {
	t.Parallel()
	q := store.DefaultQueueConfig("short")
	q.LockDuration = time.Second
	q.MaxDeliveryCount = 2
	s := sbtest.Start(t, sbtest.WithConfig(cfg(q)))
	c := client(t, s)
	ctx := ctxT(t, 40*time.Second)
	if err := sender(t, c, "short").SendMessage(ctx, &azservicebus.Message{Body: []byte("x")}, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	r := receiver(t, c, "short", nil)
	first := receiveN(t, ctx, r, 1)[0]
	// Let the lock lapse: the message comes back with the count raised.
	second := receiveN(t, ctx, r, 1)[0]
	if second.DeliveryCount != first.DeliveryCount+1 || *second.SequenceNumber != *first.SequenceNumber {
		t.Fatalf("after lock expiry: got count %d seq %d, want %d and %d", second.DeliveryCount, *second.SequenceNumber, first.DeliveryCount+1, *first.SequenceNumber)
	}
	var sbErr *azservicebus.Error
	if err := r.CompleteMessage(ctx, first, nil); !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeLockLost {
		t.Errorf("complete with the expired lock: got %v, want %s", err, azservicebus.CodeLockLost)
	}
	// The second failure (this abandon, or the lock lapsing first on a slow
	// machine) reaches MaxDeliveryCount 2: dead-lettered.
	if err := r.AbandonMessage(ctx, second, nil); err != nil && !(errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeLockLost) {
		t.Fatalf("abandon: %v", err)
	}
	dlq := receiver(t, c, "short", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	dl := receiveN(t, ctx, dlq, 1)[0]
	if dl.DeadLetterReason == nil || *dl.DeadLetterReason != "MaxDeliveryCountExceeded" {
		t.Errorf("dead-letter reason: got %v, want MaxDeliveryCountExceeded", dl.DeadLetterReason)
	}
}

func TestTTLExpiry(t *testing.T) {
	t.Parallel()
	dl := store.DefaultQueueConfig("ttl-dlq")
	dl.DeadLetteringOnMessageExpiration = true
	drop := store.DefaultQueueConfig("ttl-drop")
	s := sbtest.Start(t, sbtest.WithConfig(cfg(dl, drop)))
	c := client(t, s)
	ctx := ctxT(t, 20*time.Second)
	for _, q := range []string{"ttl-dlq", "ttl-drop"} {
		if err := sender(t, c, q).SendMessage(ctx, &azservicebus.Message{Body: []byte(q), TimeToLive: to(time.Second)}, nil); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	dlq := receiver(t, c, "ttl-dlq", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	got := receiveN(t, ctx, dlq, 1)[0]
	if got.DeadLetterReason == nil || *got.DeadLetterReason != "TTLExpiredException" {
		t.Errorf("expired message reason: got %v, want TTLExpiredException", got.DeadLetterReason)
	}
	// On the other queue the message is dropped once expired.
	r := receiver(t, c, "ttl-drop", nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := r.PeekMessages(ctx, 10, &azservicebus.PeekMessagesOptions{FromSequenceNumber: to(int64(1))})
		if err != nil {
			t.Fatalf("peek: %v", err)
		}
		if len(p) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("message never expired")
		}
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		<-short.Done()
		cancel()
	}
	p, err := receiver(t, c, "ttl-drop", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter}).PeekMessages(ctx, 10, nil)
	if err != nil || len(p) != 0 {
		t.Errorf("DLQ of a queue without dead-lettering on expiry: got %d messages, %v; want 0", len(p), err)
	}
}

func TestAuthAndErrors(t *testing.T) {
	t.Parallel()
	s := sbtest.Start(t)
	ctx := ctxT(t, 20*time.Second)
	var sbErr *azservicebus.Error
	t.Run("wrong key refused", func(t *testing.T) {
		cs := strings.Replace(s.ConnectionString(), "SAS_KEY_VALUE", "WRONG", 1)
		c, err := azservicebus.NewClientFromConnectionString(cs, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		err = sender(t, c, queue).SendMessage(ctx, &azservicebus.Message{Body: []byte("x")}, nil)
		if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeUnauthorizedAccess {
			t.Fatalf("got %v, want code %s", err, azservicebus.CodeUnauthorizedAccess)
		}
	})
	t.Run("expired SAS refused", func(t *testing.T) {
		host := s.Addr()
		sig := sasToken("amqp://"+host+"/"+queue, "RootManageSharedAccessKey", "SAS_KEY_VALUE", time.Now().Add(-time.Minute))
		cs := fmt.Sprintf("Endpoint=sb://%s;SharedAccessSignature=%s;UseDevelopmentEmulator=true", host, sig)
		c, err := azservicebus.NewClientFromConnectionString(cs, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		err = sender(t, c, queue).SendMessage(ctx, &azservicebus.Message{Body: []byte("x")}, nil)
		if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeUnauthorizedAccess {
			t.Fatalf("got %v, want code %s", err, azservicebus.CodeUnauthorizedAccess)
		}
	})
	t.Run("valid SAS accepted", func(t *testing.T) {
		host := s.Addr()
		sig := sasToken("amqp://"+host+"/", "RootManageSharedAccessKey", "SAS_KEY_VALUE", time.Now().Add(time.Hour))
		cs := fmt.Sprintf("Endpoint=sb://%s;SharedAccessSignature=%s;UseDevelopmentEmulator=true", host, sig)
		c, err := azservicebus.NewClientFromConnectionString(cs, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if err := sender(t, c, queue).SendMessage(ctx, &azservicebus.Message{Body: []byte("x")}, nil); err != nil {
			t.Fatalf("send with a valid SAS: %v", err)
		}
	})
	c := client(t, s)
	t.Run("unknown queue", func(t *testing.T) {
		// The put-token for the entity is answered 404, as by the real
		// service (docs/servicebus-clients.md).
		err := sender(t, c, "nope").SendMessage(ctx, &azservicebus.Message{Body: []byte("x")}, nil)
		if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeNotFound {
			t.Fatalf("got %v, want code %s", err, azservicebus.CodeNotFound)
		}
	})
	t.Run("oversize message", func(t *testing.T) {
		err := sender(t, c, queue).SendMessage(ctx, &azservicebus.Message{Body: make([]byte, 300*1024)}, nil)
		if !errors.Is(err, azservicebus.ErrMessageTooLarge) {
			t.Fatalf("got %v, want ErrMessageTooLarge", err)
		}
	})
}

// sasToken builds a token the way the SDK does (docs/servicebus-wire.md#sas-tokens).
func sasToken(audience, keyName, key string, expiry time.Time) string {
	sr := strings.ToLower(url.QueryEscape(audience))
	se := fmt.Sprint(expiry.Unix())
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(sr + "\n" + se))
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return fmt.Sprintf("SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s", sr, sig, se, keyName)
}

func TestConcurrentSendersAndReceivers(t *testing.T) {
	t.Parallel()
	s := sbtest.Start(t)
	ctx := ctxT(t, 60*time.Second)
	const senders, receivers, perSender = 4, 4, 150
	total := senders * perSender
	var wg sync.WaitGroup
	errs := make(chan error, senders+receivers)
	for i := 0; i < senders; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := azservicebus.NewClientFromConnectionString(s.ConnectionString(), nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(context.Background())
			snd, err := c.NewSender(queue, nil)
			if err != nil {
				errs <- err
				return
			}
			for j := 0; j < perSender; j++ {
				if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte(fmt.Sprintf("%d-%d", i, j))}, nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var mu sync.Mutex
	seen := map[string]int{}
	done := make(chan struct{})
	for i := 0; i < receivers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := azservicebus.NewClientFromConnectionString(s.ConnectionString(), nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(context.Background())
			r, err := c.NewReceiverForQueue(queue, nil)
			if err != nil {
				errs <- err
				return
			}
			for {
				select {
				case <-done:
					return
				default:
				}
				short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				msgs, err := r.ReceiveMessages(short, 20, nil)
				cancel()
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					errs <- err
					return
				}
				for _, m := range msgs {
					mu.Lock()
					seen[string(m.Body)]++
					n := len(seen)
					mu.Unlock()
					if err := r.CompleteMessage(ctx, m, nil); err != nil {
						errs <- fmt.Errorf("complete: %w", err)
						return
					}
					if n == total {
						select {
						case <-done:
						default:
							close(done)
						}
					}
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case err := <-errs:
		t.Fatal(err)
	case <-ctx.Done():
		t.Fatal("timed out")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != total {
		t.Fatalf("received %d distinct messages, want %d", len(seen), total)
	}
	for body, n := range seen {
		if n != 1 {
			t.Errorf("message %s delivered %d times while locked, want 1", body, n)
		}
	}
}

func TestConfigJSONFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "Config.json")
	const file = `{
  "UserConfig": {
    "Namespaces": [ {
      "Name": "sbemulatorns",
      "Queues": [ {
        "Name": "orders", // a comment, and a URL-ish string below
        "Properties": { "LockDuration": "PT30S", "MaxDeliveryCount": 5, "DefaultMessageTimeToLive": "PT1H",
                        "ForwardTo": "" }
      } ],
      "Topics": []
    } ],
    "Logging": { "Type": "File" }
  }
}`
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	s := sbtest.Start(t, sbtest.WithConfig(path))
	c := client(t, s)
	ctx := ctxT(t, 20*time.Second)
	if err := sender(t, c, "ORDERS").SendMessage(ctx, &azservicebus.Message{Body: []byte("x")}, nil); err != nil {
		t.Fatalf("send to the configured queue (names ignore case): %v", err)
	}
	m := receiveN(t, ctx, receiver(t, c, "orders", nil), 1)[0]
	if d := m.LockedUntil.Sub(*m.EnqueuedTime); d < 25*time.Second || d > 35*time.Second {
		t.Errorf("lock duration: got about %v, want 30s", d)
	}
	var sbErr *azservicebus.Error
	if err := sender(t, c, queue).SendMessage(ctx, &azservicebus.Message{Body: []byte("x")}, nil); !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeNotFound {
		t.Errorf("send to the default queue with a config that lacks it: got %v, want code %s", err, azservicebus.CodeNotFound)
	}

	bad := filepath.Join(t.TempDir(), "Config.json")
	if err := os.WriteFile(bad, []byte(strings.Replace(file, `"ForwardTo": ""`, `"RequiresSession": true`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := servicebus.New(servicebus.Options{Config: bad})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err == nil || !strings.Contains(err.Error(), "RequiresSession") {
		t.Errorf("RequiresSession=true: got %v, want an error naming it", err)
	}
	_ = srv.Close()
}

func testSettleAfterReceiverClosed(t *testing.T, tg target) {
	c := tg.client(t)
	ctx := ctxT(t, 20*time.Second)
	if err := sender(t, c, tg.queue).SendMessage(ctx, &azservicebus.Message{Body: []byte("x")}, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	r1, err := c.NewReceiverForQueue(tg.queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := receiveN(t, ctx, r1, 1)[0]
	if err := r1.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	// Locks outlive their link: a new receiver on another connection
	// settles through the management link.
	c2 := tg.client(t)
	r2 := receiver(t, c2, tg.queue, nil)
	if err := r2.CompleteMessage(ctx, m, nil); err != nil {
		t.Fatalf("complete through another receiver: %v", err)
	}
	if p, err := r2.PeekMessages(ctx, 10, nil); err != nil || len(p) != 0 {
		t.Fatalf("peek: got %d, %v; want 0", len(p), err)
	}
}

func testReceiveDeferredAndDeleteMode(t *testing.T, tg target) {
	c := tg.client(t)
	ctx := ctxT(t, 20*time.Second)
	if err := sender(t, c, tg.queue).SendMessage(ctx, &azservicebus.Message{Body: []byte("x")}, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	r := receiver(t, c, tg.queue, nil)
	m := receiveN(t, ctx, r, 1)[0]
	if err := r.DeferMessage(ctx, m, nil); err != nil {
		t.Fatalf("defer: %v", err)
	}
	p, err := r.PeekMessages(ctx, 1, &azservicebus.PeekMessagesOptions{FromSequenceNumber: m.SequenceNumber})
	if err != nil || len(p) != 1 || p[0].State != azservicebus.MessageStateDeferred {
		t.Fatalf("peek deferred: got %v, %v; want one deferred message", p, err)
	}
	// Abandoning a deferred message keeps it deferred with the count raised.
	d, err := r.ReceiveDeferredMessages(ctx, []int64{*m.SequenceNumber}, nil)
	if err != nil || len(d) != 1 {
		t.Fatalf("receive deferred: %d, %v", len(d), err)
	}
	if err := r.AbandonMessage(ctx, d[0], nil); err != nil {
		t.Fatalf("abandon deferred: %v", err)
	}
	rd := receiver(t, c, tg.queue, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	d, err = rd.ReceiveDeferredMessages(ctx, []int64{*m.SequenceNumber}, nil)
	if err != nil || len(d) != 1 || string(d[0].Body) != "x" {
		t.Fatalf("receive deferred (delete mode): %d, %v", len(d), err)
	}
	if d[0].DeliveryCount != 2 {
		t.Errorf("delivery count: got %d, want 2", d[0].DeliveryCount)
	}
	if p, err := r.PeekMessages(ctx, 1, &azservicebus.PeekMessagesOptions{FromSequenceNumber: m.SequenceNumber}); err != nil || len(p) != 0 {
		t.Fatalf("after receive-and-delete: got %d, %v; want 0", len(p), err)
	}
}

func TestPipelinedSendsOnOneSender(t *testing.T) {
	t.Parallel()
	s := sbtest.Start(t, sbtest.WithDataDir(t.TempDir()))
	c := client(t, s)
	ctx := ctxT(t, 30*time.Second)
	snd := sender(t, c, queue)
	const workers, each = 16, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte(fmt.Sprintf("%d-%d", w, i))}, nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("send: %v", err)
	}
	r := receiver(t, c, queue, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	seen := map[string]bool{}
	for _, m := range receiveN(t, ctx, r, workers*each) {
		seen[string(m.Body)] = true
	}
	if len(seen) != workers*each {
		t.Fatalf("got %d distinct messages, want %d", len(seen), workers*each)
	}
}
