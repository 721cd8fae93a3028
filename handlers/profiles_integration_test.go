package handlers

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// standIns is the four functions over Azurite, the Service Bus stand-in
// and the Batch stand-in (which runs the real task command lines with the
// real ffmpeg), driven by hand: events in, messages pumped into Dispatch,
// Sweep run until every key is settled.
type standIns struct {
	t        *testing.T
	ctx      context.Context
	cfg      config.Config
	blobs    *storage.Client
	recs     *records.Store
	tasks    *batch.Client
	receiver *azservicebus.Receiver
	e        *env
	logs     *syncWriter
	keys     map[string]string // blob → key
}

func startStandIns(t *testing.T, batchOpts emubatch.Options, signer func(config.Config, *storage.Client) Signer) *standIns {
	t.Helper()
	if testing.Short() {
		t.Skip("runs ffmpeg through the stand-ins")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg is required (make deps): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	az := azuritetest.Start(t)
	sb := sbtest.Start(t)
	bs := batchtest.Start(t, batchOpts)
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
	s := &standIns{t: t, ctx: ctx, cfg: cfg, logs: &syncWriter{}, keys: map[string]string{}}
	if s.blobs, err = storage.NewFromConnectionString(cfg.DataStorage, storage.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"input", "output", "status", "logs", "quarantine"} {
		if err := s.blobs.EnsureContainer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	sender, err := queue.NewFromConnectionString(cfg.ServiceBusConnection, cfg.Queue)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sender.Close(context.Background()) })
	if s.tasks, err = batch.NewClient(cfg.BatchEndpoint, batch.NewStaticToken(cfg.BatchToken), batch.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.tasks.SDK().CreatePool(ctx, azbatch.CreatePoolContent{
		ID: to.Ptr("ffmpeg"), VMSize: to.Ptr("standard_d2s_v5"), TargetDedicatedNodes: to.Ptr[int32](1), TaskSlotsPerNode: to.Ptr[int32](2),
	}, nil); err != nil {
		t.Fatalf("create pool: %v", err)
	}
	client, err := azservicebus.NewClientFromConnectionString(sb.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(context.Background()) })
	if s.receiver, err = client.NewReceiverForQueue(cfg.Queue, nil); err != nil {
		t.Fatal(err)
	}
	s.recs = records.New(s.blobs, cfg.StatusContainer, nil)
	var sas Signer = s.blobs
	if signer != nil {
		sas = signer(cfg, s.blobs)
	}
	h := New(cfg, Deps{
		Log: config.NewLogger(cfg, s.logs), Queue: sender, Blobs: s.blobs, SAS: sas, Records: s.recs,
		Submitter: s.tasks, Sweeper: s.tasks, Tasks: s.tasks, Presets: presets.Default(),
	})
	s.e = &env{t: t, h: h}
	return s
}

// upload puts data at name (with the ffpipe_profile metadata when profile
// is set) and delivers its BlobCreated event.
func (s *standIns) upload(name string, data []byte, profile string) {
	s.t.Helper()
	f := filepath.Join(s.t.TempDir(), "upload.mp4")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		s.t.Fatal(err)
	}
	fh, err := os.Open(f)
	if err != nil {
		s.t.Fatal(err)
	}
	defer fh.Close()
	var meta map[string]string
	if profile != "" {
		meta = map[string]string{request.MetadataProfile: profile}
	}
	etag, err := s.blobs.UploadFile(s.ctx, "input", name, fh, "video/mp4", meta)
	if err != nil {
		s.t.Fatal(err)
	}
	s.keys[name] = request.Key(s.blobs.Account(), "input", name, etag)
	ev := event(blobCreated, "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/"+s.blobs.Account(),
		subject("input", name), `"`+etag+`"`, int64(len(data)))
	if code, resp := s.e.invoke(FuncOnBlobCreated, envelope(BindingEvent, ev)); code != http.StatusOK {
		s.t.Fatalf("OnBlobCreated %s: got %d %v", name, code, resp.Logs)
	}
}

// pump hands every message that arrives within wait to Dispatch, as the
// host does.
func (s *standIns) pump(wait time.Duration) int {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, wait)
	defer cancel()
	msgs, err := s.receiver.ReceiveMessages(ctx, 100, nil)
	if err != nil && ctx.Err() == nil {
		s.t.Fatalf("receive: %v", err)
	}
	if len(msgs) == 0 {
		return 0
	}
	var ids, bodies []string
	for _, m := range msgs {
		ids, bodies = append(ids, m.MessageID), append(bodies, string(m.Body))
	}
	if code, resp := s.e.invoke(FuncDispatch, batchEnvelope(ids, bodies...)); code != http.StatusOK {
		s.t.Fatalf("Dispatch: got %d %v", code, resp.Logs)
	}
	for _, m := range msgs {
		if err := s.receiver.CompleteMessage(s.ctx, m, nil); err != nil {
			s.t.Fatal(err)
		}
	}
	return len(msgs)
}

// settle pumps messages and runs Sweep until every key has a terminal
// record.
func (s *standIns) settle() map[string]records.Record {
	s.t.Helper()
	for {
		s.pump(200 * time.Millisecond)
		if code, resp := s.e.invoke(FuncSweep, golden(s.t, "timer.json")); code != http.StatusOK {
			s.t.Fatalf("Sweep: got %d %v", code, resp.Logs)
		}
		out := map[string]records.Record{}
		for name, key := range s.keys {
			if r, err := s.recs.Get(s.ctx, key); err == nil && r.State.Terminal() {
				out[name] = r
			}
		}
		if len(out) == len(s.keys) {
			return out
		}
		if s.ctx.Err() != nil {
			s.t.Fatalf("not settled in time (%d of %d); logs:\n%s", len(out), len(s.keys), s.logs.String())
		}
	}
}

func genClip(t *testing.T, args ...string) []byte {
	t.Helper()
	f := filepath.Join(t.TempDir(), "clip.mp4")
	argv := append([]string{"-nostdin", "-v", "error"}, args...)
	if out, err := exec.Command("ffmpeg", append(argv, "-movflags", "+faststart", "-y", f)...).CombinedOutput(); err != nil {
		t.Fatalf("make clip: %v\n%s", err, out)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func videoClip(t *testing.T, size string, secs string) []byte {
	return genClip(t, "-f", "lavfi", "-i", "testsrc=size="+size+":rate=10:duration="+secs, "-f", "lavfi", "-i", "sine=frequency=440:duration="+secs,
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest")
}

// TestProfilesAgainstStandIns: uploads choose their profile by metadata
// (`ffpipe upload --profile`); hls of a 720p clip gives 360p, 540p and
// 720p rungs (no 1080p) whose segments exist, web a 720p MP4 and a JPEG,
// the default an MP3; an audio-only file sent to web and a non-media file
// fail with no_video and not_media after a single run (Batch's
// maxTaskRetryCount is 2), and only done inputs are deleted.
func TestProfilesAgainstStandIns(t *testing.T) {
	s := startStandIns(t, emubatch.Options{MaxSlots: 2}, nil)
	v720 := videoClip(t, "1280x720", "7")
	s.upload("v/hls.mp4", v720, "hls")
	s.upload("v/web.mp4", videoClip(t, "1280x720", "2"), "web")
	s.upload("v/plain.mp4", videoClip(t, "320x240", "1"), "")
	s.upload("v/audio.mp4", genClip(t, "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac"), "web")
	s.upload("v/text.mp4", []byte("this is not a movie"), "")
	recs := s.settle()

	hls := recs["v/hls.mp4"]
	var names []string
	var heights []int
	for _, o := range hls.Outputs {
		names = append(names, o.Blob)
		heights = append(heights, o.Height)
	}
	wantNames := []string{"v/hls/hls/master.m3u8", "v/hls/hls/360p/index.m3u8", "v/hls/hls/540p/index.m3u8", "v/hls/hls/720p/index.m3u8"}
	if hls.State != records.StateDone || !slices.Equal(names, wantNames) || !slices.Equal(heights, []int{0, 360, 540, 720}) {
		t.Errorf("hls record: %s %q outputs %v heights %v, want done %v [0 360 540 720]", hls.State, hls.Reason, names, heights, wantNames)
	}
	for _, o := range hls.Outputs[1:] {
		if o.Duration < 6.4 || o.Duration > 7.6 {
			t.Errorf("%s lasts %.2f s, want about 7", o.Name, o.Duration)
		}
	}
	var segs []string
	if err := s.blobs.List(s.ctx, "output", "v/hls/hls/720p/", func(it storage.Item) bool {
		segs = append(segs, it.Name)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"v/hls/hls/720p/index.m3u8", "v/hls/hls/720p/seg_00000.ts", "v/hls/hls/720p/seg_00001.ts"}; !slices.Equal(segs, want) {
		t.Errorf("720p rung blobs %v, want %v", segs, want)
	}
	if p, err := s.blobs.Properties(s.ctx, "output", "v/hls/hls/720p/seg_00000.ts"); err != nil || p.ContentType != presets.SegmentContentType {
		t.Errorf("segment content type %q (%v), want %s", p.ContentType, err, presets.SegmentContentType)
	}

	web := recs["v/web.mp4"]
	if web.State != records.StateDone || len(web.Outputs) != 2 || web.Outputs[0].Blob != "v/web.mp4" || web.Outputs[0].Height != 720 ||
		web.Outputs[1].Blob != "v/web.jpg" || web.Outputs[1].Height == 0 {
		t.Errorf("web record: %s %q outputs %+v, want a 720p v/web.mp4 and v/web.jpg", web.State, web.Reason, web.Outputs)
	}
	if plain := recs["v/plain.mp4"]; plain.State != records.StateDone || plain.Output.Blob != "v/plain.mp3" || plain.Preset != "mp3" {
		t.Errorf("default record: %s %q %s, want done v/plain.mp3", plain.State, plain.Reason, plain.Output.Blob)
	}
	for name, code := range map[string]string{"v/audio.mp4": "no_video", "v/text.mp4": "not_media"} {
		r := recs[name]
		if r.State != records.StateFailed || !strings.HasPrefix(r.Reason, code+":") || r.Attempts != 1 {
			t.Errorf("%s: %s %q after %d runs, want failed %s after 1", name, r.State, r.Reason, r.Attempts, code)
		}
		if _, err := s.blobs.Properties(s.ctx, "quarantine", name); err != nil {
			t.Errorf("%s not quarantined: %v", name, err)
		}
	}
	for _, name := range []string{"v/hls.mp4", "v/web.mp4", "v/plain.mp4"} {
		if _, err := s.blobs.Properties(s.ctx, "input", name); err == nil {
			t.Errorf("%s: input kept after done", name)
		}
	}
}

// TestTransientFailuresRetry: failures that belong to the node or to
// storage still run again. ffmpeg missing on the node (exit 127) is retried
// by Batch up to maxTaskRetryCount (3 runs); a SAS that expired before the
// task ran fails the download, and Sweep dispatches the work again with
// fresh URLs, which succeeds.
func TestTransientFailuresRetry(t *testing.T) {
	t.Run("node without ffmpeg", func(t *testing.T) {
		bin := t.TempDir()
		for _, tool := range []string{"ffprobe", "awk", "grep", "head", "cat", "cut", "tr", "rm", "mkdir"} {
			p, err := exec.LookPath(tool)
			if err != nil {
				t.Skip(err)
			}
			if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
				t.Fatal(err)
			}
		}
		s := startStandIns(t, emubatch.Options{MaxSlots: 2, Env: []string{"PATH=" + bin}}, nil)
		s.upload("a.mp4", videoClip(t, "160x120", "1"), "")
		r := s.settle()["a.mp4"]
		if r.State != records.StateFailed || !strings.HasPrefix(r.Reason, "task_failed:") || !strings.Contains(r.Reason, "exit code 127") || r.Attempts != 3 {
			t.Errorf("record %s %q after %d runs, want failed task_failed (exit 127) after 3", r.State, r.Reason, r.Attempts)
		}
	})
	t.Run("expired SAS", func(t *testing.T) {
		signer := func(cfg config.Config, c *storage.Client) Signer {
			// A client whose clock is three hours behind signs a one-hour SAS
			// that expired two hours ago.
			past, err := storage.NewFromConnectionString(cfg.DataStorage, storage.Options{Now: func() time.Time { return time.Now().Add(-3 * time.Hour) }})
			if err != nil {
				t.Fatal(err)
			}
			return &expiringSigner{Client: c, past: past, expired: map[string]bool{}}
		}
		s := startStandIns(t, emubatch.Options{MaxSlots: 2}, signer)
		s.upload("a.mp4", videoClip(t, "160x120", "1"), "")
		r := s.settle()["a.mp4"]
		if r.State != records.StateDone || r.Attempts != 2 {
			t.Errorf("record %s %q after %d dispatches, want done after 2", r.State, r.Reason, r.Attempts)
		}
		if !strings.Contains(s.logs.String(), "download_error") {
			t.Errorf("no download_error in the logs: the first run did not fail on the expired SAS")
		}
	})
}

// expiringSigner signs the first read URL of each blob with past's clock
// and a one-hour lifetime, so it has expired before the task runs; later
// URLs are signed normally.
type expiringSigner struct {
	*storage.Client
	past    *storage.Client
	mu      sync.Mutex
	expired map[string]bool
}

func (s *expiringSigner) ReadURL(ctx context.Context, cont, name string, ttl time.Duration) (string, error) {
	s.mu.Lock()
	first := !s.expired[cont+"/"+name]
	s.expired[cont+"/"+name] = true
	s.mu.Unlock()
	if !first {
		return s.Client.ReadURL(ctx, cont, name, ttl)
	}
	return s.past.ReadURL(ctx, cont, name, time.Hour)
}
