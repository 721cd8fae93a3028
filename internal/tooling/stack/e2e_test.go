package stack_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
	"github.com/ffpipe/ffpipe/internal/queue"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/storage"
	"github.com/ffpipe/ffpipe/internal/tooling/media"
	"github.com/ffpipe/ffpipe/internal/tooling/stack"
	"github.com/ffpipe/ffpipe/internal/tooling/stack/stacktest"
)

// TestEndToEnd runs the real local stack (Azurite, both stand-ins, the Event
// Grid stand-in, the local host, the packaged handler, real ffmpeg) on a
// handful of files dropped into the input container and one request sent
// straight to the queue, and checks everything the pipeline promises.
func TestEndToEnd(t *testing.T) {
	s := stacktest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg, err := s.Config()
	if err != nil {
		t.Fatal(err)
	}
	blob, err := s.Blob()
	if err != nil {
		t.Fatal(err)
	}
	checkPoolSlots(ctx, t, s, cfg.BatchPool)
	clips, err := media.GenerateSet(ctx, t.TempDir(), 3, 7, media.SetOptions{MinDuration: time.Second, MaxDuration: 3 * time.Second})
	if err != nil {
		t.Fatalf("generate clips: %v", err)
	}

	type want struct {
		name, container, blob, output string
		duration                      time.Duration
		key                           string
	}
	var wants []*want
	// Dropped into the input container (Event Grid path), one in a folder
	// with a unicode name.
	names := []string{"e2e/" + clips[0].Name, "e2e/ünï cödé " + clips[1].Name}
	for i, name := range names {
		w := &want{name: name, container: cfg.InputContainer, blob: name,
			output: strings.TrimSuffix(name, ".mp4") + ".mp3", duration: clips[i].Spec.Duration}
		w.key = upload(ctx, t, blob, clips[i].Path, w.container, w.blob)
		wants = append(wants, w)
	}
	// Sent as a request message (the `ffpipe submit` path). Event Grid is
	// paused so that only the message can start the work; Dispatch accepts
	// sources in the input container only (least privilege).
	if err := s.Stop(stack.EventGrid, false); err != nil {
		t.Fatal(err)
	}
	sub := &want{name: "submitted", container: cfg.InputContainer, blob: "sub/" + clips[2].Name,
		output: "sub/" + strings.TrimSuffix(clips[2].Name, ".mp4") + ".mp3", duration: clips[2].Spec.Duration}
	sub.key = upload(ctx, t, blob, clips[2].Path, sub.container, sub.blob)
	wants = append(wants, sub)
	sendRequest(ctx, t, s, request.Request{V: 1, Source: request.Source{Container: sub.container, Blob: sub.blob}, CorrelationID: "e2e-submit"}, sub.key)

	st, err := storage.NewFromConnectionString(s.StorageConnectionString(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	recs := records.New(st, cfg.StatusContainer, nil)
	for _, w := range wants {
		rec := waitRecord(ctx, t, recs, w.key)
		if rec.State != records.StateDone {
			t.Errorf("%s: record state %q (reason %q), want done", w.name, rec.State, rec.Reason)
			continue
		}
		if rec.Output.Blob != w.output {
			t.Errorf("%s: record output %+v, want %q", w.name, rec.Output, w.output)
		}
		// The output is a valid MP3 of the right length.
		local := filepath.Join(t.TempDir(), "out.mp3")
		download(ctx, t, blob, cfg.OutputContainer, w.output, local)
		if err := media.VerifyAudio(ctx, local, "mp3", w.duration, media.DefaultTolerance); err != nil {
			t.Errorf("%s: output: %v", w.name, err)
		}
		// The input is gone (deleted only after the output was verified).
		if _, err := blob.ServiceClient().NewContainerClient(w.container).NewBlobClient(w.blob).GetProperties(ctx, nil); !bloberror.HasCode(err, bloberror.BlobNotFound) {
			t.Errorf("%s: input still present (err %v)", w.name, err)
		}
	}
	// Finished tasks are removed.
	bc, err := s.BatchClient()
	if err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, "tasks deleted", func() (bool, string) {
		keys, err := bc.ListTaskKeys(ctx, cfg.BatchJob, 100)
		if err != nil {
			return false, err.Error()
		}
		return len(keys) == 0, strings.Join(keys, ",")
	})
}

func upload(ctx context.Context, t *testing.T, c *azblob.Client, path, container, name string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	resp, err := c.UploadFile(ctx, container, name, f, nil)
	if err != nil {
		t.Fatalf("upload %s/%s: %v", container, name, err)
	}
	return request.Key(azurite.Account, container, name, string(*resp.ETag))
}

func download(ctx context.Context, t *testing.T, c *azblob.Client, container, name, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := c.DownloadFile(ctx, container, name, f, nil); err != nil {
		t.Fatalf("download %s/%s: %v", container, name, err)
	}
}

func sendRequest(ctx context.Context, t *testing.T, s *stack.Stack, r request.Request, key string) {
	t.Helper()
	cfg, _ := s.Config()
	snd, err := queue.NewFromConnectionString(s.ServiceBusConnectionString(), cfg.Queue)
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close(ctx)
	body, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(ctx, queue.Message{ID: key, CorrelationID: r.CorrelationID, Body: body}); err != nil {
		t.Fatalf("send request: %v", err)
	}
}

// waitRecord polls the status record until it is terminal.
func waitRecord(ctx context.Context, t *testing.T, recs *records.Store, key string) records.Record {
	t.Helper()
	var rec records.Record
	poll(ctx, t, "record "+key, func() (bool, string) {
		r, err := recs.Get(ctx, key)
		if err != nil {
			return false, err.Error()
		}
		rec = r
		return r.State.Terminal(), string(r.State)
	})
	return rec
}

// poll calls f until it reports done or ctx ends.
func poll(ctx context.Context, t *testing.T, what string, f func() (bool, string)) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		ok, state := f()
		if ok {
			return
		}
		last = state
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not reached before deadline (last: %s)", what, last)
		case <-tick.C:
		}
	}
}

// checkPoolSlots: the local pool has one task slot per core (Options.Slots
// default), set explicitly, not internal/batch's default of two per vCPU
// for Azure: locally Azurite shares the task cores (docs/performance.md).
func checkPoolSlots(ctx context.Context, t *testing.T, s *stack.Stack, poolID string) {
	t.Helper()
	bc, err := s.BatchClient()
	if err != nil {
		t.Fatal(err)
	}
	pool, err := bc.SDK().GetPool(ctx, poolID, nil)
	if err != nil {
		t.Fatalf("get pool %s: %v", poolID, err)
	}
	if got, want := pool.TaskSlotsPerNode, runtime.NumCPU(); got == nil || int(*got) != want {
		t.Errorf("local pool taskSlotsPerNode = %s, want %d (the cores)", fmtPtr(got), want)
	}
}

func fmtPtr(p *int32) string {
	if p == nil {
		return "unset"
	}
	return strconv.Itoa(int(*p))
}
