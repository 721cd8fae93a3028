package funchost

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// TestEventGridWebhookStrictness: the extension's function lookup is
// case-sensitive and a request without aeg-event-type gets 400, whatever
// its content type.
func TestEventGridWebhookStrictness(t *testing.T) {
	c := newControl(t)
	dir := app{functions: map[string]string{"OnBlobCreated": egFunction}}.write(t)
	h := startHost(t, dir, c, Options{})
	tests := []struct {
		name, function string
		hdr            map[string]string
		want           int
	}{
		{"exact name", "OnBlobCreated", map[string]string{"aeg-event-type": "Notification"}, 202},
		{"name in another case", "onblobcreated", map[string]string{"aeg-event-type": "Notification"}, 404},
		{"no aeg-event-type", "OnBlobCreated", map[string]string{"Content-Type": "application/json"}, 400},
		{"cloudevents without aeg-event-type", "OnBlobCreated", map[string]string{"Content-Type": "application/cloudevents+json; charset=utf-8"}, 400},
		{"unknown aeg-event-type", "OnBlobCreated", map[string]string{"aeg-event-type": "Other"}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := post(t, h.URL()+"/runtime/webhooks/eventgrid?functionName="+tt.function, tt.hdr, blobCreated)
			if code != tt.want {
				t.Fatalf("got %d (%s), want %d", code, body, tt.want)
			}
		})
	}
}

// TestServiceBusLocksOfABatchAreNotRenewed: a batch invocation that outlives
// the lock gets no renewal (the extension's batch loop never renews), while
// a single-message invocation is renewed (TestServiceBusTriggerConcurrencyAndLockRenewal).
func TestServiceBusLocksOfABatchAreNotRenewed(t *testing.T) {
	c := newControl(t)
	lock := 50 * time.Millisecond
	fake := newFakeReceiver(lock)
	dir := sbApp(t, `{"maxAutoLockRenewalDuration":"00:05:00"}`,
		`{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msgs","queueName":"q","connection":"ServiceBusConnection","cardinality":"many","dataType":"string"}]}`)
	var lockedUntil time.Time
	c.setReply(func(call) reply {
		// Outlive the lock by three lock durations: a renewer at half the
		// lock would have renewed about six times.
		for time.Now().Before(lockedUntil.Add(3 * lock)) {
			time.Sleep(5 * time.Millisecond)
		}
		return okReply
	})
	m1, m2 := sbMessage("b-1", "x", 1), sbMessage("b-2", "y", 1)
	fake.add(m1, m2)
	lockedUntil = *m1.LockedUntil
	startHost(t, dir, c, Options{OpenReceiver: func(context.Context, Connection, Entity) (Receiver, error) { return fake, nil }})
	waitFor(t, "the batch settled", func() bool { comp, ab := fake.settled(); return len(comp)+len(ab) == 2 })
	for _, id := range []string{"b-1", "b-2"} {
		if n := fake.renewals(id); n != 0 {
			t.Errorf("lock renewals of %s in a batch: got %d, want 0", id, n)
		}
	}
}

// amqpMessage is a received message whose body is the given AMQP body.
func amqpMessage(id string, body azservicebus.AMQPAnnotatedMessageBody) *azservicebus.ReceivedMessage {
	m := sbMessage(id, "", 1)
	m.Body = nil
	if len(body.Data) == 1 {
		m.Body = body.Data[0]
	}
	m.RawAMQPMessage = &azservicebus.AMQPAnnotatedMessage{Body: body}
	return m
}

// TestServiceBusBodyKinds: a body the extension cannot bind (an AMQP value
// that is not a string, a sequence, any value for binary) fails the
// invocation, and with it the whole batch; a string value binds as the
// string and several data sections are concatenated.
func TestServiceBusBodyKinds(t *testing.T) {
	data := func(parts ...string) azservicebus.AMQPAnnotatedMessageBody {
		var b azservicebus.AMQPAnnotatedMessageBody
		for _, p := range parts {
			b.Data = append(b.Data, []byte(p))
		}
		return b
	}
	value := func(v any) azservicebus.AMQPAnnotatedMessageBody {
		return azservicebus.AMQPAnnotatedMessageBody{Value: v}
	}
	sequence := azservicebus.AMQPAnnotatedMessageBody{Sequence: [][]any{{"a", int64(1)}}}
	tests := []struct {
		name        string
		cardinality string
		dataType    string
		bodies      []azservicebus.AMQPAnnotatedMessageBody
		want        string // the Data value the handler gets; "" = no invocation, all abandoned
	}{
		{"batch of data sections", "many", "string", []azservicebus.AMQPAnnotatedMessageBody{data("a"), data("b", "c")}, `"[\"a\",\"bc\"]"`},
		{"batch with a string value", "many", "string", []azservicebus.AMQPAnnotatedMessageBody{data("a"), value("v")}, `"[\"a\",\"v\"]"`},
		{"batch with an int value", "many", "string", []azservicebus.AMQPAnnotatedMessageBody{data("a"), value(int64(5))}, ""},
		{"batch with a sequence", "many", "string", []azservicebus.AMQPAnnotatedMessageBody{data("a"), sequence}, ""},
		{"batch, binary, string value", "many", "binary", []azservicebus.AMQPAnnotatedMessageBody{data("a"), value("v")}, ""},
		{"one, map value", "one", "string", []azservicebus.AMQPAnnotatedMessageBody{value(map[string]any{"k": "v"})}, ""},
		{"one, string value", "one", "string", []azservicebus.AMQPAnnotatedMessageBody{value("hello")}, `"\"hello\""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newControl(t)
			fake := newFakeReceiver(time.Minute)
			dir := sbApp(t, `{}`, `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msgs","queueName":"q","connection":"ServiceBusConnection","cardinality":"`+tt.cardinality+`","dataType":"`+tt.dataType+`"}]}`)
			var ids []string
			for i, b := range tt.bodies {
				id := "m-" + string(rune('a'+i))
				ids = append(ids, id)
				fake.add(amqpMessage(id, b))
			}
			h := startHost(t, dir, c, Options{OpenReceiver: func(context.Context, Connection, Entity) (Receiver, error) { return fake, nil }})
			waitFor(t, "every message settled", func() bool { comp, ab := fake.settled(); return len(comp)+len(ab) == len(ids) })
			comp, ab := fake.settled()
			slices.Sort(comp)
			slices.Sort(ab)
			if tt.want == "" {
				if !slices.Equal(ab, ids) || h.Stats()["Dispatch"].Invocations != 0 {
					t.Fatalf("got completed %v, abandoned %v, %d invocations; want all abandoned without an invocation",
						comp, ab, h.Stats()["Dispatch"].Invocations)
				}
				return
			}
			if !slices.Equal(comp, ids) {
				t.Fatalf("got completed %v, abandoned %v; want all completed", comp, ab)
			}
			d, _ := c.next(t).envelope(t)
			if got := string(d["msgs"]); got != tt.want {
				t.Errorf("Data.msgs: got %s, want %s", got, tt.want)
			}
		})
	}
}
