package queue

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sbtest"
)

func TestSendAgainstStandIn(t *testing.T) {
	conn, s := sender(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := Message{ID: "0123456789abcdef0123456789abcdef", CorrelationID: "corr-1", Body: []byte(`{"v":1}`),
		Properties: map[string]any{"key": "0123456789abcdef0123456789abcdef", "v": int64(1)}}
	if err := s.Send(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctx, Message{Body: []byte("x")}); err == nil {
		t.Errorf("Send without an id: got nil error")
	}

	r := receiver(t, conn)
	msgs, err := r.ReceiveMessages(ctx, 1, nil)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive: got %d messages, %v", len(msgs), err)
	}
	m := msgs[0]
	if m.MessageID != want.ID || m.ContentType == nil || *m.ContentType != ContentType ||
		m.CorrelationID == nil || *m.CorrelationID != want.CorrelationID || string(m.Body) != string(want.Body) {
		t.Errorf("got id %s, content type %v, correlation %v, body %q", m.MessageID, m.ContentType, m.CorrelationID, m.Body)
	}
	if m.ApplicationProperties["key"] != want.ID || m.ApplicationProperties["v"] != int64(1) {
		t.Errorf("application properties: got %v", m.ApplicationProperties)
	}
	if err := r.CompleteMessage(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
}

func TestSendErrorsAreRedacted(t *testing.T) {
	// Nothing listens on port 1: the send fails, and the error must not
	// carry the key from the connection string.
	s, err := NewFromConnectionString("Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=Root;SharedAccessKey=TOPSECRETKEY;UseDevelopmentEmulator=true;", "transcode")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = s.Send(ctx, Message{ID: "k", Body: []byte("{}")})
	if err == nil {
		t.Fatal("send to a closed port: got nil error")
	}
	if strings.Contains(err.Error(), "TOPSECRETKEY") {
		t.Errorf("error leaks the key: %v", err)
	}
}

// TestSendScheduled: NotBefore holds the message back until then.
func TestSendScheduled(t *testing.T) {
	conn, s := sender(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	at := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if err := s.Send(ctx, Message{ID: "later", Body: []byte("{}"), NotBefore: at}); err != nil {
		t.Fatal(err)
	}
	r := receiver(t, conn)
	peeked, err := r.PeekMessages(ctx, 10, nil)
	if err != nil || len(peeked) != 1 {
		t.Fatalf("peek: got %d messages, %v; want the scheduled one", len(peeked), err)
	}
	m := peeked[0]
	if m.State != azservicebus.MessageStateScheduled || m.ScheduledEnqueueTime == nil || !m.ScheduledEnqueueTime.Equal(at) {
		t.Errorf("got state %v, scheduled %v; want scheduled for %v", m.State, m.ScheduledEnqueueTime, at)
	}
}

// receiver opens a receiver on the queue "transcode", closed when t ends.
// sender starts a Service Bus stand-in and returns its connection string
// and a Sender for the queue "transcode", closed with the test.
func sender(t *testing.T) (string, *Sender) {
	t.Helper()
	sb := sbtest.Start(t)
	s, err := NewFromConnectionString(sb.ConnectionString(), "transcode")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return sb.ConnectionString(), s
}

func receiver(t *testing.T, connectionString string) *azservicebus.Receiver {
	t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(connectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	r, err := c.NewReceiverForQueue("transcode", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}
