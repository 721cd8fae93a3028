package servicebus_test

import (
	"context"
	"errors"
	"fmt"
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

func TestSendReceiveComplete(t *testing.T) {
	s := sbtest.Start(t)
	c := client(t, s)
	ctx := ctxT(t, 20*time.Second)
	snd := sender(t, c, queue)
	if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte("hello"), MessageID: to("m1")}, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	r := receiver(t, c, queue, nil)
	got := receiveN(t, ctx, r, 1)[0]
	if string(got.Body) != "hello" || got.MessageID != "m1" {
		t.Fatalf("got body %q id %q, want hello m1", got.Body, got.MessageID)
	}
	if got.DeliveryCount != 1 || got.SequenceNumber == nil || *got.SequenceNumber != 1 {
		t.Errorf("got delivery count %d seq %v, want 1 and 1", got.DeliveryCount, got.SequenceNumber)
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
	_ = errors.New
	_ = fmt.Sprint
}

func to[T any](v T) *T { return &v }
