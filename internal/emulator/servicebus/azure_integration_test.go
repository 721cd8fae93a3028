//go:build integration

package servicebus_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// TestConformanceAzure runs the portable scenarios against a real
// namespace: go test -tags integration with FFPIPE_SB_CONNECTION (a
// connection string) and FFPIPE_SB_QUEUE (a queue with default properties
// that the test may empty).
func TestConformanceAzure(t *testing.T) {
	cs, q := os.Getenv("FFPIPE_SB_CONNECTION"), os.Getenv("FFPIPE_SB_QUEUE")
	if cs == "" || q == "" {
		t.Skip("set FFPIPE_SB_CONNECTION and FFPIPE_SB_QUEUE to run against Azure")
	}
	tg := target{connStr: cs, queue: q}
	for _, sc := range portable {
		t.Run(sc.name, func(t *testing.T) {
			drain(t, tg)
			sc.run(t, tg)
		})
	}
}

// drain deletes every active message so each scenario starts empty.
func drain(t *testing.T, tg target) {
	t.Helper()
	r, err := tg.client(t).NewReceiverForQueue(tg.queue, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		msgs, err := r.ReceiveMessages(ctx, 100, nil)
		cancel()
		if err != nil || len(msgs) == 0 {
			return
		}
	}
}
