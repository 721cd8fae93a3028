package funchost

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

func TestTimerTrigger(t *testing.T) {
	c := newControl(t)
	dir := app{functions: map[string]string{
		"Tick": `{"bindings":[{"type":"timerTrigger","direction":"in","name":"myTimer","schedule":"%TickSchedule%"}]}`,
	}, values: map[string]string{"TickSchedule": "* * * * * *"}}.write(t)
	startHost(t, dir, c, Options{})
	for range 2 {
		cl := c.next(t)
		if cl.Path != "/Tick" {
			t.Fatalf("path: got %s, want /Tick", cl.Path)
		}
		data, meta := cl.envelope(t)
		if got, want := string(data["myTimer"]), `{"IsPastDue":false,"Schedule":{"AdjustForDST":true},"ScheduleStatus":null}`; got != want {
			t.Fatalf("Data.myTimer: got %s, want %s", got, want)
		}
		if len(meta) != 1 || meta["sys"] == nil {
			t.Fatalf("Metadata: got %v, want only sys", meta)
		}
	}
}

func TestTimerPastDueAndRunOnStartup(t *testing.T) {
	const yearly = "0 0 0 1 1 *"
	tests := []struct {
		name        string
		status      string // pre-existing schedule status file
		runOnStart  bool
		wantPastDue bool
		wantLast    string
	}{
		{"missed occurrence", `{"last":"2019-01-01T00:00:00Z","next":"2020-01-01T00:00:00Z","lastUpdated":"2019-01-01T00:00:01Z"}`, false, true, "2019-01-01T00:00:00+00:00"},
		{"run on startup, first ever", "", true, false, "0001-01-01T00:00:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newControl(t)
			fj := `{"bindings":[{"type":"timerTrigger","direction":"in","name":"t","schedule":"` + yearly + `","runOnStartup":` + map[bool]string{true: "true", false: "false"}[tt.runOnStart] + `}]}`
			dir := app{functions: map[string]string{"Sweep": fj}}.write(t)
			data := t.TempDir()
			if tt.status != "" {
				must(t, os.MkdirAll(filepath.Join(data, "timers"), 0o755))
				must(t, os.WriteFile(filepath.Join(data, "timers", "Sweep.status.json"), []byte(tt.status), 0o644))
			}
			startHost(t, dir, c, Options{DataDir: data})
			d, _ := c.next(t).envelope(t)
			var info struct {
				Schedule       map[string]any
				ScheduleStatus *struct{ Last, Next, LastUpdated string }
				IsPastDue      bool
			}
			must(t, json.Unmarshal(d["t"], &info))
			if info.IsPastDue != tt.wantPastDue || info.ScheduleStatus == nil || info.ScheduleStatus.Last != tt.wantLast {
				t.Fatalf("TimerInfo: got %s, want IsPastDue %v and Last %s", d["t"], tt.wantPastDue, tt.wantLast)
			}
			if !strings.HasSuffix(info.ScheduleStatus.LastUpdated, "+00:00") {
				t.Errorf("LastUpdated: got %q, want an offset", info.ScheduleStatus.LastUpdated)
			}
			waitFor(t, "schedule status saved", func() bool {
				raw, err := os.ReadFile(filepath.Join(data, "timers", "Sweep.status.json"))
				var st scheduleStatus
				return err == nil && json.Unmarshal(raw, &st) == nil && st.Next.Year() > 2025 && !st.Last.IsZero()
			})
		})
	}
}

func TestTimerBadSchedule(t *testing.T) {
	c := newControl(t)
	dir := app{functions: map[string]string{
		"Bad":     `{"bindings":[{"type":"timerTrigger","direction":"in","name":"t","schedule":"61 * * * * *"}]}`,
		"Missing": `{"bindings":[{"type":"timerTrigger","direction":"in","name":"t","schedule":"%NoSuchSetting%"}]}`,
	}}.write(t)
	h := startHost(t, dir, c, Options{})
	if err := h.LoadErrors()["Bad"]; !errors.Is(err, ErrSchedule) {
		t.Errorf("Bad: got %v, want ErrSchedule", err)
	}
	if err := h.LoadErrors()["Missing"]; !errors.Is(err, ErrConfig) {
		t.Errorf("Missing: got %v, want ErrConfig", err)
	}
}

// fakeReceiver is a hand-written Service Bus receiver.
type fakeReceiver struct {
	mu        sync.Mutex
	queue     []*azservicebus.ReceivedMessage
	arrived   chan struct{}
	completed []string
	abandoned []string
	renewed   map[string]int
	lock      time.Duration
	closed    bool
}

func newFakeReceiver(lock time.Duration) *fakeReceiver {
	return &fakeReceiver{arrived: make(chan struct{}, 1000), renewed: map[string]int{}, lock: lock}
}

func (f *fakeReceiver) add(msgs ...*azservicebus.ReceivedMessage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range msgs {
		until := time.Now().Add(f.lock)
		m.LockedUntil = &until
		f.queue = append(f.queue, m)
		f.arrived <- struct{}{}
	}
}

func (f *fakeReceiver) ReceiveMessages(ctx context.Context, max int, _ *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	select {
	case <-f.arrived:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := min(max, len(f.queue))
	out := f.queue[:n:n]
	f.queue = f.queue[n:]
	for range n - 1 {
		<-f.arrived
	}
	return out, nil
}

func (f *fakeReceiver) CompleteMessage(_ context.Context, m *azservicebus.ReceivedMessage, _ *azservicebus.CompleteMessageOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.completed = append(f.completed, m.MessageID)
	return nil
}

func (f *fakeReceiver) AbandonMessage(_ context.Context, m *azservicebus.ReceivedMessage, _ *azservicebus.AbandonMessageOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.abandoned = append(f.abandoned, m.MessageID)
	return nil
}

func (f *fakeReceiver) RenewMessageLock(_ context.Context, m *azservicebus.ReceivedMessage, _ *azservicebus.RenewMessageLockOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.renewed[m.MessageID]++
	until := time.Now().Add(f.lock)
	m.LockedUntil = &until
	return nil
}

func (f *fakeReceiver) Close(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeReceiver) settled() (completed, abandoned []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.completed...), append([]string(nil), f.abandoned...)
}

func (f *fakeReceiver) renewals(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.renewed[id]
}

const sbConn = "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"

func sbApp(t *testing.T, hostExt, fn string) string {
	t.Helper()
	return app{
		hostJSON:  `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}},"extensions":{"serviceBus":` + hostExt + `}}`,
		functions: map[string]string{"Dispatch": fn},
		values:    map[string]string{"ServiceBusConnection": sbConn, "FFPIPE_QUEUE": "transcode"},
	}.write(t)
}

func sbMessage(id, body string, delivery uint32) *azservicebus.ReceivedMessage {
	enq := time.Date(2026, 3, 1, 9, 12, 33, 123456700, time.UTC)
	exp := enq.Add(14 * 24 * time.Hour)
	seq := int64(4711)
	ct := "application/json"
	return &azservicebus.ReceivedMessage{
		MessageID: id, Body: []byte(body), DeliveryCount: delivery, EnqueuedTime: &enq, ExpiresAt: &exp,
		SequenceNumber: &seq, ContentType: &ct, ApplicationProperties: map[string]any{"tenant": "contoso"},
		LockToken: [16]byte{0x6b, 0x1f, 0x2c, 0x3d, 0x4e, 0x5f, 0x4a, 0x6b, 0x8c, 0x7d, 0x9e, 0x0f, 0x1a, 0x2b, 0x3c, 0x4d},
	}
}

func TestServiceBusTriggerOne(t *testing.T) {
	c := newControl(t)
	fake := newFakeReceiver(time.Minute)
	dir := sbApp(t, `{"maxConcurrentCalls":2}`,
		`{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg","queueName":"%FFPIPE_QUEUE%","connection":"ServiceBusConnection"}]}`)
	var gotConn Connection
	var gotEntity Entity
	c.setReply(func(cl call) reply {
		if strings.Contains(cl.Body, "fail-me") {
			return reply{status: 500, body: "{}"}
		}
		return okReply
	})
	startHost(t, dir, c, Options{OpenReceiver: func(_ context.Context, conn Connection, e Entity) (Receiver, error) {
		gotConn, gotEntity = conn, e
		return fake, nil
	}})
	fake.add(sbMessage("m-1", `{"orderId":"A-1001","qty":2,"messageId":"body-id"}`, 1))
	cl := c.next(t)
	if cl.Path != "/Dispatch" {
		t.Fatalf("path: got %s", cl.Path)
	}
	data, meta := cl.envelope(t)
	if got := unwrap(t, data["msg"]); got != `{"orderId":"A-1001","qty":2,"messageId":"body-id"}` {
		t.Errorf("Data.msg: got %q", got)
	}
	for k, want := range map[string]string{
		"DeliveryCount":   `"1"`,
		"SequenceNumber":  `"4711"`,
		"LockToken":       `"\"6b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d\""`,
		"EnqueuedTimeUtc": `"2026-03-01T09:12:33"`,
		"EnqueuedTime":    `"2026-03-01T09:12:33+00:00"`,
		"ExpiresAtUtc":    `"2026-03-15T09:12:33"`,
		"ContentType":     `"\"application/json\""`,
		// Body fields pollute Metadata and overwrite MessageId case-insensitively.
		"MessageId":             `"\"body-id\""`,
		"orderId":               `"\"A-1001\""`,
		"qty":                   `"\"2\""`,
		"ApplicationProperties": `{"tenant":"contoso"}`,
		"UserProperties":        `{"tenant":"contoso"}`,
		"MessageActions":        `{}`,
	} {
		if got := string(meta[k]); got != want {
			t.Errorf("Metadata.%s: got %s, want %s", k, got, want)
		}
	}
	if _, ok := meta["ReplyTo"]; ok {
		t.Error("Metadata has null ReplyTo")
	}
	if gotConn.ConnectionString != sbConn || gotEntity.Queue != "transcode" {
		t.Errorf("receiver opened with %+v %+v", gotConn, gotEntity)
	}
	waitFor(t, "complete", func() bool { comp, _ := fake.settled(); return len(comp) == 1 })

	fake.add(sbMessage("m-2", "fail-me", 1))
	waitFor(t, "abandon", func() bool { _, ab := fake.settled(); return len(ab) == 1 && ab[0] == "m-2" })
}

func TestServiceBusTriggerConcurrencyAndLockRenewal(t *testing.T) {
	c := newControl(t)
	fake := newFakeReceiver(80 * time.Millisecond)
	dir := sbApp(t, `{"maxConcurrentCalls":2,"maxAutoLockRenewalDuration":"00:01:00"}`,
		`{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg","queueName":"q","connection":"ServiceBusConnection","dataType":"binary"}]}`)
	var mu sync.Mutex
	inflight, maxInflight, done := 0, 0, 0
	c.setReply(func(cl call) reply {
		mu.Lock()
		inflight++
		maxInflight = max(maxInflight, inflight)
		mu.Unlock()
		// Hold each invocation until its lock was renewed twice and a
		// second invocation runs beside it (or no more can come).
		var env struct{ Metadata map[string]json.RawMessage }
		_ = json.Unmarshal([]byte(cl.Body), &env)
		var id string
		_ = json.Unmarshal(env.Metadata["MessageId"], &id)
		_ = json.Unmarshal([]byte(id), &id)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			ok := (inflight >= 2 || done+inflight >= 5) && fake.renewals(id) >= 2
			mu.Unlock()
			if ok {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		mu.Lock()
		inflight--
		done++
		mu.Unlock()
		return okReply
	})
	startHost(t, dir, c, Options{OpenReceiver: func(context.Context, Connection, Entity) (Receiver, error) { return fake, nil }})
	for i := range 5 {
		fake.add(sbMessage("m-"+string(rune('a'+i)), "\x00\x01binary", 1))
	}
	waitFor(t, "5 completions", func() bool { comp, _ := fake.settled(); return len(comp) == 5 })
	mu.Lock()
	defer mu.Unlock()
	if maxInflight != 2 {
		t.Errorf("max concurrent invocations: got %d, want 2 (maxConcurrentCalls)", maxInflight)
	}
	for i := range 5 {
		if n := fake.renewals("m-" + string(rune('a'+i))); n < 2 {
			t.Errorf("lock renewals of m-%c: got %d, want >= 2", 'a'+i, n)
		}
	}
	cl := <-c.calls
	data, _ := cl.envelope(t)
	if got := string(data["msg"]); got != `"AAFiaW5hcnk="` {
		t.Errorf("binary Data.msg: got %s, want base64", got)
	}
}

func TestServiceBusTriggerMany(t *testing.T) {
	c := newControl(t)
	fake := newFakeReceiver(time.Minute)
	dir := sbApp(t, `{"maxMessageBatchSize":2}`,
		`{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msgs","queueName":"q","connection":"ServiceBusConnection","cardinality":"many","dataType":"string"}]}`)
	fake.add(sbMessage("id-1", `{"orderId":"A-1001"}`, 1), sbMessage("id-2", "plain text body", 3), sbMessage("id-3", "fail", 1))
	c.setReply(func(cl call) reply {
		if strings.Contains(cl.Body, "fail") {
			return reply{status: 500, body: "{}"}
		}
		return okReply
	})
	startHost(t, dir, c, Options{OpenReceiver: func(context.Context, Connection, Entity) (Receiver, error) { return fake, nil }})
	cl := c.next(t)
	data, meta := cl.envelope(t)
	var inner string
	must(t, json.Unmarshal(data["msgs"], &inner))
	if inner != `["{\"orderId\":\"A-1001\"}","plain text body"]` {
		t.Errorf("Data.msgs: got %s", data["msgs"])
	}
	for k, want := range map[string]string{
		"DeliveryCountArray":         `"[1,3]"`,
		"MessageIdArray":             `"[\"id-1\",\"id-2\"]"`,
		"SequenceNumberArray":        `"[4711,4711]"`,
		"EnqueuedTimeUtcArray":       `"[\"2026-03-01T09:12:33.1234567\",\"2026-03-01T09:12:33.1234567\"]"`,
		"EnqueuedTimeArray":          `"[\"2026-03-01T09:12:33.1234567+00:00\",\"2026-03-01T09:12:33.1234567+00:00\"]"`,
		"ReplyToArray":               `"[null,null]"`,
		"ApplicationPropertiesArray": `"[{\"tenant\":\"contoso\"},{\"tenant\":\"contoso\"}]"`,
	} {
		if got := string(meta[k]); got != want {
			t.Errorf("Metadata.%s: got %s, want %s", k, got, want)
		}
	}
	if _, ok := meta["orderId"]; ok {
		t.Error("batch Metadata has body fields")
	}
	waitFor(t, "first batch completed, second abandoned", func() bool {
		comp, ab := fake.settled()
		return len(comp) == 2 && len(ab) == 1 && ab[0] == "id-3"
	})
}

func TestServiceBusManyWithoutDataTypeRejectsNonJSON(t *testing.T) {
	c := newControl(t)
	fake := newFakeReceiver(time.Minute)
	dir := sbApp(t, `{}`,
		`{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msgs","queueName":"q","connection":"ServiceBusConnection","cardinality":"many"}]}`)
	fake.add(sbMessage("id-1", `{"a":1}`, 1), sbMessage("id-2", "not json", 1))
	h := startHost(t, dir, c, Options{OpenReceiver: func(context.Context, Connection, Entity) (Receiver, error) { return fake, nil }})
	waitFor(t, "batch abandoned", func() bool { _, ab := fake.settled(); return len(ab) == 2 })
	if st := h.Stats()["Dispatch"]; st.Invocations != 0 {
		t.Errorf("invocations: got %d, want 0 (binding fails before the handler)", st.Invocations)
	}
}

func TestServiceBusMissingConnection(t *testing.T) {
	c := newControl(t)
	dir := app{functions: map[string]string{
		"Dispatch": `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"m","queueName":"q","connection":"Nope"}]}`,
	}}.write(t)
	h := startHost(t, dir, c, Options{})
	if err := h.LoadErrors()["Dispatch"]; !errors.Is(err, ErrConfig) {
		t.Fatalf("got %v, want ErrConfig", err)
	}
}

func TestRedact(t *testing.T) {
	got := redact("bad conn " + sbConn + " url https://a/b?sv=1&sig=abc%2F&x=1")
	if strings.Contains(got, "SAS_KEY_VALUE") || strings.Contains(got, "abc%2F") {
		t.Fatalf("redact left a secret: %s", got)
	}
}

// levelRecorder keeps the level of every "invocation succeeded" line.
type levelRecorder struct {
	mu     sync.Mutex
	levels []slog.Level
}

func (r *levelRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *levelRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *levelRecorder) WithGroup(string) slog.Handler            { return r }
func (r *levelRecorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message == "invocation succeeded" {
		r.mu.Lock()
		r.levels = append(r.levels, rec.Level)
		r.mu.Unlock()
	}
	return nil
}

func (r *levelRecorder) first(t *testing.T) slog.Level {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		n := len(r.levels)
		var l slog.Level
		if n > 0 {
			l = r.levels[0]
		}
		r.mu.Unlock()
		if n > 0 {
			return l
		}
		time.Sleep(10 * time.Millisecond) // poll
	}
	t.Fatal("no invocation logged within 20 s")
	return 0
}

// TestTimerQuietWhenIdle: a timer invocation whose handler logged nothing
// (Sweep finding no work, every second locally) is logged at debug, so
// that `make dev` shows file events; one that logged something at info.
func TestTimerQuietWhenIdle(t *testing.T) {
	tests := []struct {
		name string
		body string
		want slog.Level
	}{
		{"no logs", `{"Logs":[]}`, slog.LevelDebug},
		{"logs", `{"Logs":["sweep: 1 completed tasks"]}`, slog.LevelInfo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newControl(t)
			c.fn = func(call) reply { return reply{status: 200, body: tt.body} }
			dir := app{functions: map[string]string{
				"Tick": `{"bindings":[{"type":"timerTrigger","direction":"in","name":"t","schedule":"* * * * * *"}]}`,
			}}.write(t)
			rec := &levelRecorder{}
			startHost(t, dir, c, Options{Logger: slog.New(rec)})
			if got := rec.first(t); got != tt.want {
				t.Errorf("invocation succeeded logged at %v, want %v", got, tt.want)
			}
		})
	}
}
