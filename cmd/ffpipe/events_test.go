package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sbtest"
	"github.com/ffpipe/ffpipe/internal/events"
	"github.com/ffpipe/ffpipe/internal/queue"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/tooling/stack"
)

// TestEventsCommand publishes two completion events to the events topic of
// a Service Bus stand-in and reads them with `ffpipe events`, as JSON and
// as lines for people; a second read finds nothing and returns.
func TestEventsCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb := sbtest.Start(t)
	info := filepath.Join(t.TempDir(), "stack.json")
	b, _ := json.Marshal(stack.Info{Settings: map[string]string{
		"ServiceBusConnection":  sb.ConnectionString(),
		"DataStorage":           "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;",
		"FFPIPE_BATCH_ENDPOINT": "http://127.0.0.1:1",
		"FFPIPE_BATCH_TOKEN":    "tok",
	}})
	if err := os.WriteFile(info, b, 0o600); err != nil {
		t.Fatal(err)
	}
	snd, err := queue.NewFromConnectionString(sb.ConnectionString(), "transcode-events")
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close(context.Background())
	publish := func(key, blob string, st records.State) events.Event {
		ev, err := events.New("devstoreaccount1", records.Record{Key: key, State: st, Updated: time.Now(),
			Source: records.Blob{Container: "input", Blob: blob}, Reason: map[bool]string{true: "decode_error: exit code 65"}[st == records.StateFailed]})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(ev)
		if err := snd.Send(ctx, queue.Message{ID: ev.ID, Body: body, ContentType: events.ContentType}); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	good := publish("0123456789abcdef0123456789abcdef", "v/good.mp4", records.StateDone)
	bad := publish("fedcba9876543210fedcba9876543210", "v/bad.mp4", records.StateFailed)

	var out bytes.Buffer
	if err := run(ctx, []string{"events", "--info", info, "--json", "--wait", "2s"}, &out, &out); err != nil {
		t.Fatalf("events --json: %v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("events --json: got %d lines, want 2:\n%s", len(lines), out.String())
	}
	for i, want := range []events.Event{good, bad} {
		ev, err := events.Parse([]byte(lines[i]))
		if err != nil || ev.ID != want.ID || ev.Subject != want.Subject || ev.Type != want.Type {
			t.Errorf("line %d: got %+v, %v; want %s %s", i, ev, err, want.ID, want.Subject)
		}
	}

	publish("00000000000000000000000000000003", "v/third.mp4", records.StateFailed)
	out.Reset()
	if err := run(ctx, []string{"events", "--info", info, "--wait", "2s"}, &out, &out); err != nil {
		t.Fatalf("events: %v\n%s", err, out.String())
	}
	if got := out.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, "failed") || !strings.Contains(got, "input/v/third.mp4") || !strings.Contains(got, "decode_error") {
		t.Errorf("events: got %q, want one line for the third file's failure", got)
	}
	out.Reset()
	if err := run(ctx, []string{"events", "--info", info, "--json", "--wait", "1s"}, &out, &out); err != nil || out.Len() != 0 {
		t.Errorf("events with nothing waiting: got %q, %v; want nothing", out.String(), err)
	}
}
