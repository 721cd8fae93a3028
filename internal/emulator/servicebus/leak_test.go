package servicebus_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
)

// brokerGoroutines lists goroutines running broker code.
func brokerGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "ffpipe/internal/emulator/servicebus") && !strings.Contains(g, "_test.go") {
			out = append(out, g)
		}
	}
	return out
}

// TestNoGoroutineLeak is not parallel: parallel tests are paused while it
// runs, so every broker goroutine it sees belongs to its own server.
func TestNoGoroutineLeak(t *testing.T) {
	s, err := servicebus.New(servicebus.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := azservicebus.NewClientFromConnectionString(s.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, _ := c.NewSender(queue, nil)
	if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte("x")}, nil); err != nil {
		t.Fatal(err)
	}
	r, _ := c.NewReceiverForQueue(queue, nil)
	msgs, err := r.ReceiveMessages(ctx, 1, nil)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive: %d, %v", len(msgs), err)
	}
	if err := r.CompleteMessage(ctx, msgs[0], nil); err != nil {
		t.Fatal(err)
	}
	// Close the server while the client is still connected.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.Close(ctx)
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		left := brokerGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d broker goroutines left after Close:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		<-tick.C
	}
}
