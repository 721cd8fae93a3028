package funchost

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sbtest"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/store"
)

// These tests drive the serviceBusTrigger through the real azservicebus SDK
// against the local broker (internal/emulator/servicebus).

func sendMessages(t *testing.T, connStr, queue string, msgs ...*azservicebus.Message) {
	t.Helper()
	client, err := azservicebus.NewClientFromConnectionString(connStr, nil)
	must(t, err)
	defer client.Close(context.Background())
	sender, err := client.NewSender(queue, nil)
	must(t, err)
	defer sender.Close(context.Background())
	for _, m := range msgs {
		must(t, sender.SendMessage(t.Context(), m, nil))
	}
}

// queueEmpty peeks the queue: true when no active message is left.
func queueEmpty(t *testing.T, connStr, queue string) bool {
	t.Helper()
	client, err := azservicebus.NewClientFromConnectionString(connStr, nil)
	must(t, err)
	defer client.Close(context.Background())
	r, err := client.NewReceiverForQueue(queue, nil)
	must(t, err)
	defer r.Close(context.Background())
	msgs, err := r.PeekMessages(t.Context(), 10, nil)
	must(t, err)
	return len(msgs) == 0
}

func TestServiceBusTriggerEndToEndBatch(t *testing.T) {
	sb := sbtest.Start(t)
	c := newControl(t)
	var mu sync.Mutex
	invocations := 0
	succeeded := map[string]bool{}
	var deliveryCounts []string
	c.setReply(func(cl call) reply {
		var env struct{ Metadata map[string]json.RawMessage }
		_ = json.Unmarshal([]byte(cl.Body), &env)
		var ids, counts string
		_ = json.Unmarshal(env.Metadata["MessageIdArray"], &ids)
		_ = json.Unmarshal(env.Metadata["DeliveryCountArray"], &counts)
		mu.Lock()
		defer mu.Unlock()
		invocations++
		deliveryCounts = append(deliveryCounts, counts)
		if invocations == 1 {
			return reply{status: 500, body: "{}"} // the whole batch is abandoned
		}
		var list []string
		_ = json.Unmarshal([]byte(ids), &list)
		for _, id := range list {
			succeeded[id] = true
		}
		return okReply
	})
	dir := app{
		hostJSON: `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}},"extensions":{"serviceBus":{"maxMessageBatchSize":100}}}`,
		functions: map[string]string{"Dispatch": `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msgs",` +
			`"queueName":"%FFPIPE_QUEUE%","connection":"ServiceBusConnection","cardinality":"many","dataType":"string"}]}`},
		values: map[string]string{"FFPIPE_QUEUE": "transcode"},
	}.write(t)
	// Send before the host starts so the first receive sees the whole batch.
	var msgs []*azservicebus.Message
	for _, id := range []string{"m1", "m2", "m3"} {
		msgs = append(msgs, &azservicebus.Message{MessageID: &id, Body: []byte(`{"v":1,"source":{"container":"input","blob":"` + id + `.mp4"}}`),
			ApplicationProperties: map[string]any{"tenant": "contoso"}})
	}
	sendMessages(t, sb.ConnectionString(), "transcode", msgs...)
	h := startHost(t, dir, c, Options{Settings: map[string]string{"ServiceBusConnection": sb.ConnectionString()}})

	waitFor(t, "all messages processed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(succeeded) == 3
	})
	waitFor(t, "queue empty", func() bool { return queueEmpty(t, sb.ConnectionString(), "transcode") })
	mu.Lock()
	defer mu.Unlock()
	if !strings.HasPrefix(deliveryCounts[0], "[1") || !strings.Contains(strings.Join(deliveryCounts[1:], ""), "2") {
		t.Errorf("DeliveryCountArray per invocation: got %q, want 1s then 2s after the abandon", deliveryCounts)
	}
	if st := h.Stats()["Dispatch"]; st.Failed != 1 {
		t.Errorf("Stats: got %+v, want 1 failed invocation", st)
	}
}

func TestServiceBusTriggerEndToEndLockRenewal(t *testing.T) {
	sb := sbtest.Start(t, sbtest.WithConfig(&store.Config{Queues: []store.QueueConfig{{Name: "transcode", LockDuration: time.Second}}}))
	c := newControl(t)
	var mu sync.Mutex
	var counts []string
	c.setReply(func(cl call) reply {
		var env struct{ Metadata map[string]json.RawMessage }
		_ = json.Unmarshal([]byte(cl.Body), &env)
		mu.Lock()
		counts = append(counts, string(env.Metadata["DeliveryCount"]))
		first := len(counts) == 1
		mu.Unlock()
		if first {
			// Run for well over the 1 s lock: the host must renew it.
			<-time.After(2500 * time.Millisecond)
		}
		return okReply
	})
	dir := app{
		hostJSON: `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}},"extensions":{"serviceBus":{"maxAutoLockRenewalDuration":"00:01:00"}}}`,
		functions: map[string]string{"Dispatch": `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg",` +
			`"queueName":"transcode","connection":"ServiceBusConnection"}]}`},
	}.write(t)
	h := startHost(t, dir, c, Options{Settings: map[string]string{"ServiceBusConnection": sb.ConnectionString()}})
	id := "slow-1"
	sendMessages(t, sb.ConnectionString(), "transcode", &azservicebus.Message{MessageID: &id, Body: []byte("slow")})
	waitFor(t, "invocation done", func() bool { return h.Stats()["Dispatch"].Succeeded == 1 })
	waitFor(t, "queue empty", func() bool { return queueEmpty(t, sb.ConnectionString(), "transcode") })
	mu.Lock()
	defer mu.Unlock()
	if len(counts) != 1 || counts[0] != `"1"` {
		t.Fatalf("invocations (DeliveryCount): got %v, want one with \"1\" (no redelivery while the lock is renewed)", counts)
	}
}
