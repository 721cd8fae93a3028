package handlers

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/emulator/azurite/azuritetest"
	emubatch "github.com/ffpipe/ffpipe/internal/emulator/batch"
	"github.com/ffpipe/ffpipe/internal/emulator/batch/batchtest"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sbtest"
	"github.com/ffpipe/ffpipe/internal/presets"
	"github.com/ffpipe/ffpipe/internal/queue"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/storage"
)

// TestPipelineAgainstStandIns runs the four functions with the real clients
// against Azurite, the Service Bus stand-in and the Batch stand-in (which
// runs ffmpeg): one good file ends done, one broken file ends failed and
// quarantined.
func TestPipelineAgainstStandIns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ffmpeg through the stand-ins")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg is required (make deps): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	az := azuritetest.Start(t)
	sb := sbtest.Start(t)
	bs := batchtest.Start(t, emubatch.Options{MaxSlots: 2})

	cfg, err := config.Load(config.FromMap(map[string]string{
		"ServiceBusConnection":  sb.ConnectionString(),
		"DataStorage":           az.ConnectionString(),
		"FFPIPE_BATCH_ENDPOINT": bs.URL(),
		"FFPIPE_BATCH_TOKEN":    bs.Token(),
		"FFPIPE_LOG_FORMAT":     "text",
	}))
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := storage.NewFromConnectionString(cfg.DataStorage, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"input", "output", "status", "logs", "quarantine"} {
		if err := blobs.EnsureContainer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	sender, err := queue.NewFromConnectionString(cfg.ServiceBusConnection, cfg.Queue)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(context.Background())
	tasks, err := batch.NewClient(cfg.BatchEndpoint, batch.NewStaticToken(cfg.BatchToken), batch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tasks.SDK().CreatePool(ctx, azbatch.CreatePoolContent{
		ID: to.Ptr("ffmpeg"), VMSize: to.Ptr("standard_d2s_v5"), TargetDedicatedNodes: to.Ptr[int32](1), TaskSlotsPerNode: to.Ptr[int32](2),
	}, nil); err != nil {
		t.Fatalf("create pool: %v", err)
	}
	recs := records.New(blobs, cfg.StatusContainer, nil)
	var logs syncWriter
	h := New(cfg, Deps{
		Log: config.NewLogger(cfg, &logs), Queue: sender, Blobs: blobs, SAS: blobs, Records: recs,
		Submitter: tasks, Sweeper: tasks, Tasks: tasks, Presets: presets.Default(),
	})
	e := &env{t: t, h: h}

	// Two inputs: a real MP4 and garbage with the right name.
	dir := t.TempDir()
	clip := filepath.Join(dir, "clip.mp4")
	if out, err := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
		"-c:a", "aac", "-b:a", "64k", "-y", clip).CombinedOutput(); err != nil {
		t.Fatalf("make clip: %v\n%s", err, out)
	}
	good, _ := os.ReadFile(clip)
	inputs := map[string][]byte{"music/good clip.mp4": good, "bad.mp4": []byte("this is not a movie")}
	keys := map[string]string{}
	for name, data := range inputs {
		if err := blobs.Put(ctx, "input", name, data, "video/mp4", nil); err != nil {
			t.Fatal(err)
		}
		p, err := blobs.Properties(ctx, "input", name)
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = request.Key(blobs.Account(), "input", name, p.ETag)
		ev := event(blobCreated, "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/"+blobs.Account(),
			subject("input", name), `"`+p.ETag+`"`, p.Size)
		if code, resp := e.invoke(FuncOnBlobCreated, envelope(BindingEvent, ev)); code != http.StatusOK {
			t.Fatalf("OnBlobCreated %s: got %d %v", name, code, resp.Logs)
		}
	}

	// The messages carry MessageId = key, JSON content type, correlation id.
	client, err := azservicebus.NewClientFromConnectionString(sb.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	receiver, err := client.NewReceiverForQueue(cfg.Queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer receiver.Close(context.Background())
	var bodies, ids []string
	for len(bodies) < 2 {
		msgs, err := receiver.ReceiveMessages(ctx, 2, nil)
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		for _, m := range msgs {
			if m.ContentType == nil || *m.ContentType != queue.ContentType {
				t.Errorf("content type: got %v, want %s", m.ContentType, queue.ContentType)
			}
			if m.CorrelationID == nil || *m.CorrelationID == "" {
				t.Errorf("message %s has no correlation id", m.MessageID)
			}
			if m.ApplicationProperties["key"] != m.MessageID {
				t.Errorf("application property key: got %v, want %s", m.ApplicationProperties["key"], m.MessageID)
			}
			bodies = append(bodies, string(m.Body))
			ids = append(ids, m.MessageID)
			if err := receiver.CompleteMessage(ctx, m, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, key := range keys {
		if !strings.Contains(strings.Join(ids, ","), key) {
			t.Errorf("no message with id %s for %s (got %v)", key, name, ids)
		}
	}

	// Dispatch the batch the way the host would.
	if code, resp := e.invoke(FuncDispatch, batchEnvelope(ids, bodies...)); code != http.StatusOK {
		t.Fatalf("Dispatch: got %d %v", code, resp.Logs)
	}
	for name, key := range keys {
		if ok, err := tasks.TaskExists(ctx, cfg.BatchJob, key); err != nil || !ok {
			t.Fatalf("task for %s: exists=%v, %v", name, ok, err)
		}
	}
	// Redelivery of the same batch is harmless (TaskExists = success).
	if code, _ := e.invoke(FuncDispatch, batchEnvelope(ids, bodies...)); code != http.StatusOK {
		t.Fatalf("Dispatch again: got %d", code)
	}

	// Sweep until both are settled.
	for {
		if code, resp := e.invoke(FuncSweep, golden(t, "timer.json")); code != http.StatusOK {
			t.Fatalf("Sweep: got %d %v", code, resp.Logs)
		}
		settled := 0
		for _, key := range keys {
			if r, err := recs.Get(ctx, key); err == nil && r.State.Terminal() {
				settled++
			}
		}
		if settled == len(keys) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("tasks not settled in time; logs:\n%s", logs.String())
		case <-time.After(200 * time.Millisecond):
		}
	}

	goodRec, _ := recs.Get(ctx, keys["music/good clip.mp4"])
	if goodRec.State != records.StateDone || goodRec.Output.Blob != "music/good clip.mp3" || goodRec.Output.Size == 0 {
		t.Errorf("good file record: got %+v", goodRec)
	}
	if p, err := blobs.Properties(ctx, "output", "music/good clip.mp3"); err != nil || p.Size == 0 {
		t.Errorf("output blob: %+v, %v", p, err)
	}
	if _, err := blobs.Properties(ctx, "input", "music/good clip.mp4"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("good input after done: got %v, want deleted", err)
	}
	badRec, _ := recs.Get(ctx, keys["bad.mp4"])
	// Not media is deterministic: it fails on its first run, never retried.
	if badRec.State != records.StateFailed || !strings.HasPrefix(badRec.Reason, "not_media:") || badRec.Attempts != 1 {
		t.Errorf("bad file record: got %s %q after %d runs, want failed not_media after 1", badRec.State, badRec.Reason, badRec.Attempts)
	}
	if _, err := blobs.Properties(ctx, "quarantine", "bad.mp4"); err != nil {
		t.Errorf("bad input not quarantined: %v", err)
	}
	for name, key := range keys {
		if ok, err := tasks.TaskExists(ctx, cfg.BatchJob, key); err != nil || ok {
			t.Errorf("task for %s after sweep: exists=%v, %v", name, ok, err)
		}
	}
	t.Logf("bad file reason: %s", badRec.Reason)
	if !strings.Contains(logs.String(), "key="+keys["bad.mp4"]) {
		t.Errorf("logs lack the key of the bad file")
	}
}

// syncWriter is a goroutine-safe log sink.
type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
