package batch_test

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
	"github.com/ffpipe/ffpipe/internal/emulator/azurite/azuritetest"
	emubatch "github.com/ffpipe/ffpipe/internal/emulator/batch"
	"github.com/ffpipe/ffpipe/internal/emulator/batch/batchtest"
	"github.com/ffpipe/ffpipe/internal/presets"
	"github.com/ffpipe/ffpipe/internal/request"
)

// TestClientAgainstStandIns drives the Client against the local Batch
// stand-in, which runs the task as a real process: the resource file comes
// from Azurite through a read SAS, the real ffmpeg runs the preset argv,
// and the output and logs go back to Azurite through write SASes. The
// blob name is hostile; it must come out exactly as the output name.
func TestClientAgainstStandIns(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skipf("ffmpeg not installed: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Storage: containers, a sample MP4 under a hostile name, SAS URLs.
	az := azuritetest.Start(t)
	svc, err := azblob.NewClientFromConnectionString(az.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"input", "output", "logs"} {
		if _, err := svc.CreateContainer(ctx, c, nil); err != nil {
			t.Fatalf("create container %s: %v", c, err)
		}
	}
	sample := makeSample(t)
	// The key names a blob version, not a preset: one task per blob.
	blobs := map[string]string{
		"mp3":       "vidéos/a b;$(id) `x` -i ü.mp4",
		"thumbnail": "-y/*.mp4",
	}
	etags := map[string]string{}
	for _, b := range blobs {
		up, err := svc.UploadBuffer(ctx, "input", b, sample, nil)
		if err != nil {
			t.Fatal(err)
		}
		etags[b] = string(*up.ETag)
	}
	cred, err := azblob.NewSharedKeyCredential(azurite.Account, azurite.Key)
	if err != nil {
		t.Fatal(err)
	}
	signed := func(container, blobName string, perm string) string {
		t.Helper()
		v := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour), Permissions: perm, ContainerName: container, BlobName: blobName}
		q, err := v.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		u := az.URL() + "/" + container
		if blobName != "" {
			u += "/" + (&url.URL{Path: blobName}).EscapedPath()
		}
		return u + "?" + q.Encode()
	}
	// A container URL whose SAS covers exactly one blob, as Dispatch makes
	// for the output and each log file.
	signedFor := func(container, blobName, perm string) string {
		t.Helper()
		u, q, _ := strings.Cut(signed(container, blobName, perm), "?")
		return u[:strings.Index(u, "/"+container)+len(container)+1] + "?" + q
	}
	writePerm := (&sas.BlobPermissions{Create: true, Write: true}).String()
	readPerm := (&sas.BlobPermissions{Read: true}).String()

	// Batch: the stand-in and our client.
	emu := batchtest.Start(t, emubatch.Options{MaxSlots: 2})
	c, err := batch.NewClient(emu.URL(), batch.NewStaticToken(emu.Token()), batch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.EnsurePool(ctx, batch.PoolConfig{TaskSlotsPerNode: 2, MaxNodes: 1})
	if err != nil || !res.Created {
		t.Fatalf("EnsurePool = %+v, %v; want created", res, err)
	}
	if res, err := c.EnsurePool(ctx, batch.PoolConfig{TaskSlotsPerNode: 2, MaxNodes: 1}); err != nil || res.Created || res.FormulaUpdated {
		t.Fatalf("EnsurePool again = %+v, %v; want no change", res, err)
	}
	if err := c.EnsureJob(ctx, "ffpipe", batch.DefaultPoolID); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureJob(ctx, "ffpipe", batch.DefaultPoolID); err != nil {
		t.Fatalf("EnsureJob again: %v", err)
	}

	set := presets.DefaultProfiles()
	d := request.Defaults{Preset: "mp3", OutputContainer: "output", Profile: set.Lookup}
	var specs []batch.TaskSpec
	for _, p := range []string{"mp3", "thumbnail"} {
		blob := blobs[p]
		r, err := request.Request{Source: request.Source{Container: "input", Blob: blob, ETag: etags[blob], Size: int64(len(sample))}, Preset: p}.
			WithDefaults(d)
		if err != nil {
			t.Fatal(err)
		}
		outs, err := r.Outputs(d)
		if err != nil {
			t.Fatal(err)
		}
		pr, _ := set.Get(p)
		key := r.Key(azurite.Account)
		stdout, stderr := batch.LogBlobs(key)
		specs = append(specs, batch.TaskSpec{
			Key: key, Request: r, Profile: pr, Outputs: outs,
			InputURL:    signed("input", blob, readPerm),
			OutputURLs:  []string{signedFor("output", r.Output.Blob, writePerm)},
			StdoutURL:   signedFor("logs", stdout, writePerm),
			StderrURL:   signedFor("logs", stderr, writePerm),
			ResultURL:   signedFor("logs", batch.ResultBlob(key), writePerm),
			Constraints: batch.Constraints{MaxWallClock: time.Minute, MaxRetries: 1},
		})
	}
	added, err := c.AddTasks(ctx, "ffpipe", specs)
	if err != nil {
		t.Fatalf("AddTasks: %v", err)
	}
	for _, a := range added {
		if a.Err != nil || a.Existed {
			t.Fatalf("AddTasks result %+v, want a new task", a)
		}
	}
	again, err := c.AddTasks(ctx, "ffpipe", specs)
	if err != nil {
		t.Fatalf("AddTasks again: %v", err)
	}
	for _, a := range again {
		if a.Err != nil || !a.Existed {
			t.Fatalf("AddTasks again result %+v, want Existed", a)
		}
	}

	var done []batch.CompletedTask
	for len(done) < len(specs) {
		if ctx.Err() != nil {
			t.Fatalf("tasks did not complete: %d of %d", len(done), len(specs))
		}
		done, err = c.ListCompleted(ctx, "ffpipe", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(done) < len(specs) {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	for _, d := range done {
		if !d.Success || d.ExitCode == nil || *d.ExitCode != 0 || d.RequestErr != nil {
			stderr := download(t, svc, "logs", d.Key+"/stderr.txt")
			t.Fatalf("task %s = %+v; stderr:\n%s", d.Key, d, stderr)
		}
		out := download(t, svc, "output", d.Request.Output.Blob)
		if len(out) == 0 {
			t.Errorf("output %q is empty", d.Request.Output.Blob)
		}
		if want := strings.TrimSuffix(blobs[d.Request.Preset], ".mp4") + "." + map[string]string{"mp3": "mp3", "thumbnail": "jpg"}[d.Request.Preset]; d.Request.Output.Blob != want {
			t.Errorf("output name = %q, want %q", d.Request.Output.Blob, want)
		}
		props, err := svc.ServiceClient().NewContainerClient("output").NewBlobClient(d.Request.Output.Blob).GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := set.Get(d.Request.Preset)
		if got := props.ContentType; got == nil || *got != p.Outputs[0].ContentType {
			t.Errorf("output content type = %v, want %q", got, p.Outputs[0].ContentType)
		}
		download(t, svc, "logs", d.Key+"/stderr.txt") // fails the test if missing
		if err := c.DeleteTask(ctx, "ffpipe", d.Key); err != nil {
			t.Fatal(err)
		}
		if ok, err := c.TaskExists(ctx, "ffpipe", d.Key); ok || err != nil {
			t.Errorf("TaskExists after delete = %v, %v", ok, err)
		}
	}
	counts, err := c.TaskCounts(ctx, "ffpipe")
	if err != nil {
		t.Fatal(err)
	}
	if counts.Active+counts.Running+counts.Completed != 0 {
		t.Errorf("task counts after deleting all = %+v, want zero", counts)
	}
}

func download(t *testing.T, svc *azblob.Client, container, name string) []byte {
	t.Helper()
	resp, err := svc.DownloadStream(context.Background(), container, name, nil)
	if err != nil {
		t.Fatalf("download %s/%s: %v", container, name, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func makeSample(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc=duration=1:size=160x120:rate=10", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
		"-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", "-y", "s.mp4")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make sample: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "s.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
