package funchost

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite/azuritetest"
	"github.com/ffpipe/ffpipe/internal/emulator/eventgrid"
)

// TestEventGridStandInToHost wires Azurite → eventgrid stand-in → this host's
// webhook → handler, as the local stack does: the handshake passes, a failed
// invocation (500) is retried by Event Grid, and the event arrives intact.
func TestEventGridStandInToHost(t *testing.T) {
	az := azuritetest.Start(t)
	blob, err := azblob.NewClientFromConnectionString(az.ConnectionString(), nil)
	must(t, err)
	_, err = blob.CreateContainer(t.Context(), "input", nil)
	must(t, err)

	c := newControl(t)
	var calls atomic.Int32
	c.setReply(func(call) reply {
		if calls.Add(1) == 1 {
			return reply{status: 500, body: "{}"}
		}
		return okReply
	})
	dir := app{functions: map[string]string{"OnBlobCreated": egFunction}}.write(t)
	h := startHost(t, dir, c, Options{Keys: Keys{System: map[string]string{"eventgrid_extension": "egkey"}}})

	eg := eventgrid.New(eventgrid.Options{
		ConnectionString: az.ConnectionString(),
		Containers:       []string{"input"},
		Subscriptions: []eventgrid.Subscription{{Name: "ffpipe", Endpoint: h.EventGridWebhookURL("OnBlobCreated"),
			SubjectBeginsWith: "/blobServices/default/containers/input/", SubjectEndsWith: ".mp4"}},
		DataDir:    t.TempDir(),
		RetryDelay: 10 * time.Millisecond,
		Logger:     testLogger(t),
	})
	must(t, eg.Start(t.Context()))
	defer eg.Close()

	_, err = blob.UploadBuffer(t.Context(), "input", "videos/a.mp4", []byte("data"), nil)
	must(t, err)
	eg.Poke()
	first, second := c.next(t), c.next(t)
	for _, cl := range []call{first, second} {
		data, _ := cl.envelope(t)
		if text := unwrap(t, data["event"]); !strings.Contains(text, `"subject": "/blobServices/default/containers/input/blobs/videos/a.mp4"`) {
			t.Fatalf("event text: got %s", text)
		}
	}
	waitFor(t, "delivered", func() bool { return eg.Stats().Delivered == 1 })
	if st := eg.Stats(); st.Retried != 1 {
		t.Errorf("eventgrid Stats: got %+v, want 1 retry after the 500", st)
	}
}

// eventSubject extracts the subject of the event in an OnBlobCreated invocation body.
func eventSubject(body string) string {
	var env struct{ Data map[string]json.RawMessage }
	if json.Unmarshal([]byte(body), &env) != nil {
		return ""
	}
	var outer, text string
	if json.Unmarshal(env.Data["event"], &outer) != nil || json.Unmarshal([]byte(outer), &text) != nil {
		return ""
	}
	var ev struct{ Subject string }
	_ = json.Unmarshal([]byte(text), &ev)
	return ev.Subject
}

// BenchmarkUploadToInvocation measures upload → Event Grid stand-in → host →
// handler latency, one blob at a time (the local OnBlobCreated path; the
// pipeline budget for upload → output overhead is 500 ms at p50).
func BenchmarkUploadToInvocation(b *testing.B) {
	az := azuritetest.Start(b)
	blob, err := azblob.NewClientFromConnectionString(az.ConnectionString(), nil)
	must(b, err)
	_, err = blob.CreateContainer(context.Background(), "input", nil)
	must(b, err)
	c := newControl(b)
	seen := make(chan string, 1024)
	c.setReply(func(cl call) reply {
		seen <- eventSubject(cl.Body)
		return okReply
	})
	dir := app{functions: map[string]string{"OnBlobCreated": egFunction}}.write(b)
	h := startHost(b, dir, c, Options{Logger: slog.New(slog.DiscardHandler)})
	eg := eventgrid.New(eventgrid.Options{ConnectionString: az.ConnectionString(), Containers: []string{"input"},
		Subscriptions: []eventgrid.Subscription{{Name: "bench", Endpoint: h.EventGridWebhookURL("OnBlobCreated")}}})
	must(b, eg.Start(context.Background()))
	defer eg.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("f%06d.mp4", i)
		_, err := blob.UploadBuffer(context.Background(), "input", name, []byte("x"), nil)
		must(b, err)
		want := "/blobServices/default/containers/input/blobs/" + name
		for got := range seen {
			if got == want {
				break
			}
		}
	}
}
