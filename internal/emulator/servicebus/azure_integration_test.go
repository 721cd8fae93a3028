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

// TestSDKConformanceAzure runs scenarios.json through the Go SDK against a
// real namespace: go test -tags integration with FFPIPE_SB_CONNECTION and
// FFPIPE_SB_CONFORMANCE_ENTITIES=1, which promises that the namespace holds
// the queues and the topic of testdata/conformance/Config.json with those
// properties (their messages are deleted before each scenario).
func TestSDKConformanceAzure(t *testing.T) {
	cs := os.Getenv("FFPIPE_SB_CONNECTION")
	if cs == "" || os.Getenv("FFPIPE_SB_CONFORMANCE_ENTITIES") != "1" {
		t.Skip("set FFPIPE_SB_CONNECTION and FFPIPE_SB_CONFORMANCE_ENTITIES=1 to run the scenarios against Azure")
	}
	_, spec := loadConformanceSpec(t)
	tg := target{connStr: cs}
	for _, sc := range spec.Scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			for _, e := range []string{"conformance", "dedup", "shortlock", "expiring"} {
				drain(t, target{connStr: cs, queue: e})
				drain(t, target{connStr: cs, queue: e + "/$DeadLetterQueue"})
			}
			for _, sub := range []string{"all", "audit", "retried-failures", "mp3"} {
				drain(t, target{connStr: cs, queue: "events/Subscriptions/" + sub})
				drain(t, target{connStr: cs, queue: "events/Subscriptions/" + sub + "/$DeadLetterQueue"})
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(sc.TimeoutSeconds)*time.Second)
			defer cancel()
			goScenarios[sc.Name](t, ctx, tg.client(t), cs, sc.Queue, spec)
		})
	}
}
