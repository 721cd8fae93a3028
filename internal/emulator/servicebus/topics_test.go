package servicebus_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sbtest"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/store"
)

// topicCfg is one topic "orders" with the given subscriptions.
func topicCfg(mod func(*store.TopicConfig), subs ...store.SubscriptionConfig) *store.Config {
	t := store.TopicConfig{Name: "orders", Subscriptions: subs}
	if mod != nil {
		mod(&t)
	}
	return &store.Config{Topics: []store.TopicConfig{t}}
}

func sub(name string, rules ...store.RuleConfig) store.SubscriptionConfig {
	s := store.DefaultSubscriptionConfig(name)
	s.Rules = rules
	return s
}

func subReceiver(t *testing.T, c *azservicebus.Client, topic, name string, opts *azservicebus.ReceiverOptions) *azservicebus.Receiver {
	t.Helper()
	r, err := c.NewReceiverForSubscription(topic, name, opts)
	if err != nil {
		t.Fatalf("new receiver: %v", err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

// bodies returns the bodies of msgs, sorted.
func bodies(msgs []*azservicebus.ReceivedMessage) []string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, string(m.Body))
	}
	sort.Strings(out)
	return out
}

// drain peeks everything in a subscription (or its DLQ).
func peekAll(t *testing.T, ctx context.Context, r *azservicebus.Receiver) []*azservicebus.ReceivedMessage {
	t.Helper()
	p, err := r.PeekMessages(ctx, 100, &azservicebus.PeekMessagesOptions{FromSequenceNumber: to(int64(0))})
	if err != nil {
		t.Fatalf("peek: %v", err)
	}
	return p
}

func TestTopicFanOut(t *testing.T) {
	t.Parallel()
	s := sbtest.Start(t, sbtest.WithConfig(topicCfg(nil, sub("a"), sub("b"))))
	c := client(t, s)
	ctx := ctxT(t, 20*time.Second)
	snd := sender(t, c, "orders")
	if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte("one"), ApplicationProperties: map[string]any{"n": int64(1)}}, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	batch, err := snd.NewMessageBatch(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"two", "three"} {
		if err := batch.AddMessage(&azservicebus.Message{Body: []byte(b)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := snd.SendMessageBatch(ctx, batch, nil); err != nil {
		t.Fatalf("send batch: %v", err)
	}
	var seqs [2][]int64
	for i, name := range []string{"a", "b"} {
		r := subReceiver(t, c, "orders", name, nil)
		got := receiveN(t, ctx, r, 3)
		if fmt.Sprint(bodies(got)) != "[one three two]" {
			t.Errorf("subscription %s: got %v, want [one three two]", name, bodies(got))
		}
		for _, m := range got {
			seqs[i] = append(seqs[i], *m.SequenceNumber)
			if err := r.CompleteMessage(ctx, m, nil); err != nil {
				t.Errorf("complete on %s: %v", name, err)
			}
		}
		if got[0].ApplicationProperties["n"] != int64(1) || got[0].DeliveryCount != 1 {
			t.Errorf("subscription %s: first message props %v count %d, want n=1 count 1", name, got[0].ApplicationProperties, got[0].DeliveryCount)
		}
	}
	// Each copy carries the topic's sequence number.
	if fmt.Sprint(seqs[0]) != fmt.Sprint(seqs[1]) {
		t.Errorf("sequence numbers: a %v, b %v; want the same", seqs[0], seqs[1])
	}
	// Completing in one subscription leaves the other's copies alone, and
	// both are now empty.
	for _, name := range []string{"a", "b"} {
		if p := peekAll(t, ctx, subReceiver(t, c, "orders", name, nil)); len(p) != 0 {
			t.Errorf("subscription %s after completing: %d messages left", name, len(p))
		}
	}
}

func TestTopicCorrelationFilterRoutes(t *testing.T) {
	t.Parallel()
	red := store.RuleConfig{Name: "red", FilterType: store.FilterCorrelation,
		Correlation: store.CorrelationFilter{Label: "order", Properties: map[string]any{"color": "red"}}}
	vip := store.RuleConfig{Name: "vip", FilterType: store.FilterCorrelation,
		Correlation: store.CorrelationFilter{CorrelationID: "vip", ContentType: "application/json"}}
	s := sbtest.Start(t, sbtest.WithConfig(topicCfg(nil, sub("red", red), sub("vip", vip), sub("all"))))
	c := client(t, s)
	ctx := ctxT(t, 20*time.Second)
	snd := sender(t, c, "orders")
	msgs := []*azservicebus.Message{
		{Body: []byte("red order"), Subject: to("order"), ApplicationProperties: map[string]any{"color": "red"}},
		{Body: []byte("blue order"), Subject: to("order"), ApplicationProperties: map[string]any{"color": "blue"}},
		{Body: []byte("red note"), Subject: to("note"), ApplicationProperties: map[string]any{"color": "red"}},
		{Body: []byte("vip"), CorrelationID: to("vip"), ContentType: to("application/json")},
		{Body: []byte("vip text"), CorrelationID: to("vip"), ContentType: to("text/plain")},
		{Body: []byte("red order VIP"), Subject: to("order"), CorrelationID: to("vip"), ContentType: to("application/json"),
			ApplicationProperties: map[string]any{"COLOR": "red"}},
	}
	for _, m := range msgs {
		if err := snd.SendMessage(ctx, m, nil); err != nil {
			t.Fatalf("send %s: %v", m.Body, err)
		}
	}
	want := map[string]string{
		"red": "[red order red order VIP]",
		"vip": "[red order VIP vip]",
		"all": "[blue order red note red order red order VIP vip vip text]",
	}
	for name, w := range want {
		if got := bodies(peekAll(t, ctx, subReceiver(t, c, "orders", name, nil))); fmt.Sprint(got) != w {
			t.Errorf("subscription %s: got %v, want %s", name, got, w)
		}
	}
}

// TestSubscriptionSemantics runs the queue semantics on a subscription:
// abandon up to MaxDeliveryCount into the subscription's DLQ, explicit
// dead-lettering, defer, renew lock, lock expiry, receive-and-delete and
// TTL.
func TestSubscriptionSemantics(t *testing.T) {
	t.Parallel()
	short := sub("short")
	short.LockDuration = 3 * time.Second
	short.MaxDeliveryCount = 2
	short.DeadLetteringOnMessageExpiration = true
	s := sbtest.Start(t, sbtest.WithConfig(topicCfg(nil, short, sub("other"))))
	c := client(t, s)
	ctx := ctxT(t, 40*time.Second)
	snd := sender(t, c, "orders")
	for _, b := range []string{"abandon", "dead", "defer", "renew"} {
		if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte(b), MessageID: to(b)}, nil); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	r := subReceiver(t, c, "orders", "short", nil)
	got := map[string]*azservicebus.ReceivedMessage{}
	for _, m := range receiveN(t, ctx, r, 4) {
		got[string(m.Body)] = m
	}
	if err := r.DeadLetterMessage(ctx, got["dead"], &azservicebus.DeadLetterOptions{Reason: to("bad"), ErrorDescription: to("really bad")}); err != nil {
		t.Fatalf("dead-letter: %v", err)
	}
	if err := r.DeferMessage(ctx, got["defer"], nil); err != nil {
		t.Fatalf("defer: %v", err)
	}
	if err := r.RenewMessageLock(ctx, got["renew"], nil); err != nil {
		t.Fatalf("renew lock: %v", err)
	}
	if err := r.CompleteMessage(ctx, got["renew"], nil); err != nil {
		t.Fatalf("complete after renew: %v", err)
	}
	deferred, err := r.ReceiveDeferredMessages(ctx, []int64{*got["defer"].SequenceNumber}, nil)
	if err != nil || len(deferred) != 1 || string(deferred[0].Body) != "defer" {
		t.Fatalf("receive deferred: got %d messages, %v", len(deferred), err)
	}
	if err := r.CompleteMessage(ctx, deferred[0], nil); err != nil {
		t.Fatalf("complete deferred: %v", err)
	}
	// "abandon": abandoned once, then its lock lapses: MaxDeliveryCount 2.
	if err := r.AbandonMessage(ctx, got["abandon"], nil); err != nil {
		t.Fatalf("abandon: %v", err)
	}
	again := receiveN(t, ctx, r, 1)[0]
	if string(again.Body) != "abandon" || again.DeliveryCount != 2 {
		t.Fatalf("after abandon: got %q count %d, want abandon count 2", again.Body, again.DeliveryCount)
	}
	// Receive-and-delete: the short locks could lapse on a loaded machine.
	dlq := subReceiver(t, c, "orders", "short", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter,
		ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	dead := map[string]*azservicebus.ReceivedMessage{}
	for _, m := range receiveN(t, ctx, dlq, 2) {
		dead[string(m.Body)] = m
	}
	if m := dead["dead"]; m == nil || m.DeadLetterReason == nil || *m.DeadLetterReason != "bad" || *m.DeadLetterErrorDescription != "really bad" {
		t.Errorf("dead-lettered message: got %+v", m)
	}
	if m := dead["abandon"]; m == nil || m.DeadLetterReason == nil || *m.DeadLetterReason != "MaxDeliveryCountExceeded" {
		t.Errorf("lock-expired message: got %+v, want reason MaxDeliveryCountExceeded", m)
	}
	// TTL: the expired copy goes to this subscription's DLQ.
	if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte("ttl"), TimeToLive: to(time.Second)}, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	if m := receiveN(t, ctx, dlq, 1)[0]; string(m.Body) != "ttl" || *m.DeadLetterReason != "TTLExpiredException" {
		t.Errorf("expired message: got %q reason %v", m.Body, m.DeadLetterReason)
	}
	// The other subscription still holds its own copies, untouched.
	rd := subReceiver(t, c, "orders", "other", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	if got := bodies(receiveN(t, ctx, rd, 4)); fmt.Sprint(got) != "[abandon dead defer renew]" {
		t.Errorf("other subscription: got %v", got)
	}
}

func TestTopicScheduleCancelAndDuplicates(t *testing.T) {
	t.Parallel()
	s := sbtest.Start(t, sbtest.WithConfig(topicCfg(func(tc *store.TopicConfig) {
		tc.RequiresDuplicateDetection = true
		tc.DuplicateDetectionHistoryTimeWindow = time.Minute
	}, sub("a"), sub("b"))))
	c := client(t, s)
	ctx := ctxT(t, 20*time.Second)
	snd := sender(t, c, "orders")
	seqs, err := snd.ScheduleMessages(ctx, []*azservicebus.Message{{Body: []byte("x")}, {Body: []byte("y")}}, time.Now().Add(time.Hour), nil)
	if err != nil || len(seqs) != 2 {
		t.Fatalf("schedule: got %v, %v", seqs, err)
	}
	if err := snd.CancelScheduledMessages(ctx, seqs[:1], nil); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	for i := 0; i < 3; i++ {
		if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte(fmt.Sprint("dup", i)), MessageID: to("same")}, nil); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	for _, name := range []string{"a", "b"} {
		p := peekAll(t, ctx, subReceiver(t, c, "orders", name, nil))
		var desc []string
		for _, m := range p {
			desc = append(desc, fmt.Sprintf("%s/%v", m.Body, m.State))
		}
		if fmt.Sprint(desc) != "[y/2 dup0/0]" {
			t.Errorf("subscription %s: got %v, want [y/2 dup0/0] (y scheduled, x cancelled, one dup)", name, desc)
		}
	}
	// A message scheduled a moment ahead becomes receivable in every
	// subscription at its time.
	soon := time.Now().Add(time.Second)
	if _, err := snd.ScheduleMessages(ctx, []*azservicebus.Message{{Body: []byte("soon")}}, soon, nil); err != nil {
		t.Fatalf("schedule: %v", err)
	}
	for _, name := range []string{"a", "b"} {
		r := subReceiver(t, c, "orders", name, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
		got := receiveN(t, ctx, r, 2) // dup0 at once, then soon
		if string(got[1].Body) != "soon" || time.Now().Before(soon.Truncate(time.Millisecond)) {
			t.Errorf("subscription %s: got %q then %q at %v, want soon after %v", name, got[0].Body, got[1].Body, time.Now(), soon)
		}
	}
}

func TestTopicAddressErrors(t *testing.T) {
	t.Parallel()
	s := sbtest.Start(t, sbtest.WithConfig(topicCfg(nil, sub("a"))))
	c := client(t, s)
	ctx := ctxT(t, 20*time.Second)
	// Addresses ignore case, as in Service Bus.
	if err := sender(t, c, "ORDERS").SendMessage(ctx, &azservicebus.Message{Body: []byte("x")}, nil); err != nil {
		t.Fatalf("send to ORDERS: %v", err)
	}
	r, err := c.NewReceiverForQueue("Orders/SUBSCRIPTIONS/A", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if got := receiveN(t, ctx, r, 1); string(got[0].Body) != "x" {
		t.Fatalf("receive via a mixed-case path: got %q", got[0].Body)
	}
	tests := []struct {
		name string
		run  func(ctx context.Context) error
		cond amqp.ErrCond
		text string
	}{
		{"send to a subscription", func(ctx context.Context) error {
			return sender(t, c, "orders/Subscriptions/a").SendMessage(ctx, &azservicebus.Message{Body: []byte("x")}, nil)
		}, amqp.ErrCondNotAllowed, "Cannot send to a subscription; send to its topic 'orders'"},
		{"receive from a topic", func(ctx context.Context) error {
			_, err := receiver(t, c, "orders", nil).ReceiveMessages(ctx, 1, nil)
			return err
		}, amqp.ErrCondNotAllowed, "Cannot open a Topic client for entity type Subscriber"},
		{"unknown subscription", func(ctx context.Context) error {
			_, err := subReceiver(t, c, "orders", "nope", nil).ReceiveMessages(ctx, 1, nil)
			return err
		}, amqp.ErrCondNotFound, "could not be found"},
		{"topic has no DLQ", func(ctx context.Context) error {
			_, err := receiver(t, c, "orders", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter}).ReceiveMessages(ctx, 1, nil)
			return err
		}, amqp.ErrCondNotFound, "could not be found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A broker that kept silent would leave the client waiting until
			// this deadline, and the error would then be the deadline, not
			// the refusal checked below.
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			err := tt.run(rctx)
			var amqpErr *amqp.Error
			var sbErr *azservicebus.Error
			switch {
			case tt.cond == amqp.ErrCondNotFound:
				// A missing entity is refused at its put-token (404), as by
				// the real service: the SDK reports code notfound.
				if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeNotFound || !strings.Contains(err.Error(), tt.text) {
					t.Fatalf("got %v, want code %s containing %q", err, azservicebus.CodeNotFound, tt.text)
				}
			case !errors.As(err, &amqpErr) || amqpErr.Condition != tt.cond || !strings.Contains(amqpErr.Description, tt.text):
				t.Fatalf("got %v, want %s containing %q", err, tt.cond, tt.text)
			}
		})
	}
}

// TestDefaultConfigEventsTopic: with no configuration the broker serves the
// transcode queue and the completion-events topic with its subscription
// "all", duplicate detection on.
func TestDefaultConfigEventsTopic(t *testing.T) {
	t.Parallel()
	s := sbtest.Start(t)
	c := client(t, s)
	ctx := ctxT(t, 20*time.Second)
	snd := sender(t, c, store.DefaultEventsTopic)
	for i := 0; i < 2; i++ {
		if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte(fmt.Sprint("event", i)), MessageID: to("event-id")}, nil); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	r := subReceiver(t, c, store.DefaultEventsTopic, store.DefaultEventsSubscription, nil)
	got := receiveN(t, ctx, r, 1)
	if string(got[0].Body) != "event0" {
		t.Fatalf("got %q, want event0", got[0].Body)
	}
	if p := peekAll(t, ctx, r); len(p) != 1 {
		t.Errorf("duplicate detection: got %d messages in the subscription, want 1", len(p))
	}
}

func TestTopicSQLFilterRoutes(t *testing.T) {
	t.Parallel()
	sql := func(name, expr string) store.RuleConfig {
		return store.RuleConfig{Name: name, FilterType: store.FilterSQL, SQL: expr}
	}
	s := sbtest.Start(t, sbtest.WithConfig(topicCfg(nil,
		sub("big-red", sql("r", "color = 'red' AND quantity * 2 > 10")),
		sub("orders", sql("o", "sys.Label LIKE 'order.%' AND sys.ContentType IN ('application/json', 'text/json')")),
		sub("untagged", sql("u", "tag IS NULL AND NOT EXISTS(region)")),
		sub("two-rules", sql("a", "sys.To = 'eu'"), sql("b", "sys.CorrelationId = 'vip' OR sys.ReplyTo LIKE 'reply!_%' ESCAPE '!'")),
		sub("none", sql("f", "1=0")),
	)))
	c := client(t, s)
	ctx := ctxT(t, 20*time.Second)
	snd := sender(t, c, "orders")
	msgs := []*azservicebus.Message{
		{Body: []byte("m1"), ApplicationProperties: map[string]any{"color": "red", "quantity": int64(6), "tag": "x"}},
		{Body: []byte("m2"), ApplicationProperties: map[string]any{"color": "red", "quantity": int32(5)}},
		{Body: []byte("m3"), Subject: to("order.created"), ContentType: to("application/json"), To: to("eu")},
		{Body: []byte("m4"), Subject: to("order.created"), ContentType: to("text/plain"), CorrelationID: to("vip")},
		{Body: []byte("m5"), ReplyTo: to("reply_q"), ApplicationProperties: map[string]any{"region": nil}},
		{Body: []byte("m6"), ReplyTo: to("replyq"), ApplicationProperties: map[string]any{"color": "red", "quantity": 7.5}},
	}
	for _, m := range msgs {
		if err := snd.SendMessage(ctx, m, nil); err != nil {
			t.Fatalf("send %s: %v", m.Body, err)
		}
	}
	want := map[string]string{
		"big-red":   "[m1 m6]",
		"orders":    "[m3]",
		"untagged":  "[m2 m3 m4 m6]",
		"two-rules": "[m3 m4 m5]", // one copy even when both rules match
		"none":      "[]",
	}
	for name, w := range want {
		if got := bodies(peekAll(t, ctx, subReceiver(t, c, "orders", name, nil))); fmt.Sprint(got) != w {
			t.Errorf("subscription %s: got %v, want %s", name, got, w)
		}
	}
}

// TestConfigLoadErrorsWithPosition: a Config.json with a filter outside
// the supported SQL subset is refused when the broker starts, with the
// place in the file and in the expression.
func TestConfigLoadErrorsWithPosition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, expr string
		want       []string
	}{
		{"syntax", "color = = 'red'", []string{"Rules[0].Properties.SqlFilter.SqlExpression: line 1, column 9: expected a value", "(Config.json line 1, column"}},
		{"unknown sys property", "sys.Colour = 'red'", []string{"line 1, column 5: unknown system property sys.Colour"}},
		{"parameter", "color = @c", []string{"line 1, column 9: parameters (@c) are not supported"}},
		{"type mismatch", "'red' = 1", []string{"line 1, column 7: cannot compare a string with a number"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "Config.json")
			body := fmt.Sprintf(`{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns","Queues":[],"Topics":[{"Name":"t","Subscriptions":[{"Name":"s","Rules":[{"Name":"r","Properties":{"FilterType":"Sql","SqlFilter":{"SqlExpression":%q}}}]}]}]}],"Logging":{"Type":"File"}}}`, tt.expr)
			if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			srv, err := servicebus.New(servicebus.Options{Config: file})
			if err == nil {
				err = srv.Start(ctxT(t, 10*time.Second))
				if err == nil {
					srv.Close()
				}
			}
			if err == nil {
				t.Fatal("got no error, want the configuration refused")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %v, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestTopicRuleActions: each matching rule with an action adds a copy
// rewritten by it (with RuleName), next to the one copy of the rules
// without actions.
func TestTopicRuleActions(t *testing.T) {
	t.Parallel()
	half := store.RuleConfig{Name: "half", FilterType: store.FilterSQL, SQL: "color = 'red'",
		Action: "SET quantity = quantity / 2; SET [new prop] = 'x' + color; REMOVE Color"}
	plain := store.RuleConfig{Name: "plain", FilterType: store.FilterCorrelation, Correlation: store.CorrelationFilter{Label: "order"}}
	s := sbtest.Start(t, sbtest.WithConfig(topicCfg(nil, sub("s", half, plain))))
	c := client(t, s)
	ctx := ctxT(t, 20*time.Second)
	snd := sender(t, c, "orders")
	msgs := []*azservicebus.Message{
		{Body: []byte("both"), Subject: to("order"), ApplicationProperties: map[string]any{"color": "red", "quantity": int64(10), "keep": 1.5}},
		{Body: []byte("action only"), ApplicationProperties: map[string]any{"color": "red", "quantity": int64(3)}},
		{Body: []byte("plain only"), Subject: to("order")},
	}
	for _, m := range msgs {
		if err := snd.SendMessage(ctx, m, nil); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	var got []string
	for _, m := range peekAll(t, ctx, subReceiver(t, c, "orders", "s", nil)) {
		got = append(got, fmt.Sprintf("%s %v", m.Body, m.ApplicationProperties))
	}
	sort.Strings(got)
	want := []string{
		"action only map[RuleName:half new prop:xred quantity:1]",
		"both map[RuleName:half keep:1.5 new prop:xred quantity:5]",
		"both map[color:red keep:1.5 quantity:10]",
		"plain only map[]",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestKill9TopicKeepsCopies: acknowledged sends to the default events
// topic survive kill -9 in its subscription, once each, and so does the
// topic's duplicate detection and sequence numbering.
func TestKill9TopicKeepsCopies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts broker processes")
	}
	t.Parallel()
	dir := t.TempDir()
	cmd, cs := startChild(t, dir)
	ctx := ctxT(t, 60*time.Second)
	c, err := azservicebus.NewClientFromConnectionString(cs, &azservicebus.ClientOptions{RetryOptions: azservicebus.RetryOptions{MaxRetries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	snd := sender(t, c, store.DefaultEventsTopic)
	const n = 50
	for i := 0; i < n; i++ {
		id := fmt.Sprint("event-", i)
		if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte(id), MessageID: &id}, nil); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	_ = c.Close(ctx)

	_, cs2 := startChild(t, dir)
	c2, err := azservicebus.NewClientFromConnectionString(cs2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close(context.Background())
	snd2 := sender(t, c2, store.DefaultEventsTopic)
	for _, id := range []string{"event-0", "event-new"} { // a duplicate, then a new event
		id := id
		if err := snd2.SendMessage(ctx, &azservicebus.Message{Body: []byte(id), MessageID: &id}, nil); err != nil {
			t.Fatalf("send %s after the restart: %v", id, err)
		}
	}
	r := subReceiver(t, c2, store.DefaultEventsTopic, store.DefaultEventsSubscription,
		&azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	got := map[string]int{}
	var last int64
	for _, m := range receiveN(t, ctx, r, n+1) {
		got[string(m.Body)]++
		if *m.SequenceNumber <= last {
			t.Errorf("sequence number %d after %d", *m.SequenceNumber, last)
		}
		last = *m.SequenceNumber
	}
	for i := 0; i < n; i++ {
		if id := fmt.Sprint("event-", i); got[id] != 1 {
			t.Errorf("%s: received %d times, want once", id, got[id])
		}
	}
	if got["event-new"] != 1 {
		t.Errorf("event-new: received %d times, want once", got["event-new"])
	}
	if p, err := r.PeekMessages(ctx, 10, nil); err != nil || len(p) != 0 {
		t.Errorf("left in the subscription: %d messages, %v; want none", len(p), err)
	}
}
