package batch_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
	"github.com/ffpipe/ffpipe/internal/emulator/azurite/azuritetest"
	"github.com/ffpipe/ffpipe/internal/emulator/batch"
)

type storage struct {
	t    *testing.T
	url  string
	cred *azblob.SharedKeyCredential
	c    *azblob.Client
}

func newStorage(t *testing.T) *storage {
	az := azuritetest.Start(t)
	c, err := azblob.NewClientFromConnectionString(az.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := azblob.NewSharedKeyCredential(azurite.Account, azurite.Key)
	if err != nil {
		t.Fatal(err)
	}
	st := &storage{t: t, url: az.URL(), cred: cred, c: c}
	for _, name := range []string{"input", "output", "logs"} {
		if _, err := c.CreateContainer(ctxT(t), name, nil); err != nil {
			t.Fatalf("create container %s: %v", name, err)
		}
	}
	return st
}

func (st *storage) put(container, name string, data []byte) {
	if _, err := st.c.UploadBuffer(ctxT(st.t), container, name, data, nil); err != nil {
		st.t.Fatalf("upload %s/%s: %v", container, name, err)
	}
}

func (st *storage) get(container, name string) ([]byte, error) {
	r, err := st.c.DownloadStream(ctxT(st.t), container, name, nil)
	if err != nil {
		return nil, err
	}
	defer r.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(r.Body)
	return b.Bytes(), err
}

func (st *storage) blobSAS(container, name string) string {
	qp, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(),
		Permissions: (&sas.BlobPermissions{Read: true}).String(), ContainerName: container, BlobName: name}.SignWithSharedKey(st.cred)
	if err != nil {
		st.t.Fatal(err)
	}
	return st.url + "/" + container + "/" + name + "?" + qp.Encode()
}

func (st *storage) containerSAS(container string) string {
	qp, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(),
		Permissions: (&sas.ContainerPermissions{Read: true, List: true, Write: true, Create: true}).String(), ContainerName: container}.SignWithSharedKey(st.cred)
	if err != nil {
		st.t.Fatal(err)
	}
	return st.url + "/" + container + "?" + qp.Encode()
}

func output(pattern, containerURL, path string, cond azbatch.OutputFileUploadCondition) azbatch.OutputFile {
	return azbatch.OutputFile{FilePattern: to.Ptr(pattern),
		Destination:   &azbatch.OutputFileDestination{Container: &azbatch.OutputFileBlobContainerDestination{ContainerURL: to.Ptr(containerURL), Path: to.Ptr(path)}},
		UploadOptions: &azbatch.OutputFileUploadConfig{UploadCondition: to.Ptr(cond)}}
}

func TestStorage(t *testing.T) {
	st := newStorage(t)
	t.Run("ResourceAndOutputFiles", func(t *testing.T) { testResourceAndOutputFiles(t, st) })
	t.Run("FFmpeg", func(t *testing.T) { testFFmpegTask(t, st) })
}

func testResourceAndOutputFiles(t *testing.T, st *storage) {
	_, c := start(t, batch.Options{MaxSlots: 4})
	createPool(t, c, "p", 1, 4, nil)
	createJob(t, c, "j", "p", nil)
	st.put("input", "videos/a b.txt", []byte("one\n"))
	st.put("input", "dir/x1.txt", []byte("two\n"))
	st.put("input", "dir/sub/x2.txt", []byte("three\n"))
	st.put("input", "other/skip.txt", []byte("no\n"))

	io := shTask("io", "cat input.txt d/dir/x1.txt d/dir/sub/x2.txt > output.txt && test ! -e d/other")
	io.ResourceFiles = []azbatch.ResourceFile{
		{HTTPURL: to.Ptr(st.blobSAS("input", "videos/a b.txt")), FilePath: to.Ptr("input.txt")},
		{StorageContainerURL: to.Ptr(st.containerSAS("input")), BlobPrefix: to.Ptr("dir/"), FilePath: to.Ptr("d")},
	}
	io.OutputFiles = []azbatch.OutputFile{
		output("output.txt", st.containerSAS("output"), "videos/a b.out", azbatch.OutputFileUploadConditionTaskSuccess),
		output("../std*.txt", st.containerSAS("logs"), "io", azbatch.OutputFileUploadConditionTaskCompletion),
		output("output.txt", st.containerSAS("logs"), "io/on-failure.txt", azbatch.OutputFileUploadConditionTaskFailure),
	}
	addTask(t, c, "j", io)
	got := waitState(t, c, "j", "io", azbatch.TaskStateCompleted)
	if *got.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
		t.Fatalf("io: got %+v %+v, want success", got.ExecutionInfo, got.ExecutionInfo.FailureInfo)
	}
	if b, err := st.get("output", "videos/a b.out"); err != nil || string(b) != "one\ntwo\nthree\n" {
		t.Errorf("output blob: got %q %v, want the concatenation", b, err)
	}
	for _, name := range []string{"io/stdout.txt", "io/stderr.txt"} {
		if _, err := st.get("logs", name); err != nil {
			t.Errorf("logs/%s: %v", name, err)
		}
	}
	if _, err := st.get("logs", "io/on-failure.txt"); !bloberror.HasCode(err, bloberror.BlobNotFound) {
		t.Errorf("taskfailure output on success: got %v, want BlobNotFound", err)
	}

	// Failures: missing blob, missing output container, identity references.
	missing := shTask("missing", "true")
	missing.ResourceFiles = []azbatch.ResourceFile{{HTTPURL: to.Ptr(st.blobSAS("input", "nope.mp4")), FilePath: to.Ptr("input.mp4")}}
	missing.OutputFiles = []azbatch.OutputFile{output("../std*.txt", st.containerSAS("logs"), "missing", azbatch.OutputFileUploadConditionTaskCompletion)}
	noContainer := shTask("nocontainer", "echo x > out.txt")
	noContainer.OutputFiles = []azbatch.OutputFile{output("out.txt", st.containerSAS("nope"), "x", azbatch.OutputFileUploadConditionTaskSuccess)}
	identity := shTask("identity", "true")
	identity.ResourceFiles = []azbatch.ResourceFile{{HTTPURL: to.Ptr(st.url + "/input/dir/x1.txt"), FilePath: to.Ptr("x"),
		IdentityReference: &azbatch.NodeIdentityReference{ResourceID: to.Ptr("/subscriptions/x/identity")}}}
	for _, tk := range []azbatch.CreateTaskContent{missing, noContainer, identity} {
		addTask(t, c, "j", tk)
	}
	for _, tt := range []struct{ id, code string }{
		{"missing", "BlobNotFound"},
		{"nocontainer", "FileUploadContainerNotFound"},
		{"identity", "IdentityReferenceNotSupported"},
	} {
		got := waitState(t, c, "j", tt.id, azbatch.TaskStateCompleted)
		fi := got.ExecutionInfo.FailureInfo
		if *got.ExecutionInfo.Result != azbatch.TaskExecutionResultFailure || fi == nil || *fi.Code != tt.code || *fi.Category != azbatch.ErrorCategoryUserError {
			t.Errorf("%s: got %+v %+v, want failure usererror %s", tt.id, got.ExecutionInfo, fi, tt.code)
		}
		if *got.ExecutionInfo.RetryCount != 0 {
			t.Errorf("%s: got retryCount %d, want 0 (not retried)", tt.id, *got.ExecutionInfo.RetryCount)
		}
		if fi != nil && fi.Message != nil && strings.Contains(*fi.Message, "sig=") && !strings.Contains(*fi.Message, "sig=REDACTED") {
			t.Errorf("%s: failure message leaks a SAS signature: %s", tt.id, *fi.Message)
		}
	}
}

func testFFmpegTask(t *testing.T, st *storage) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg is required: %v", err)
	}
	src := filepath.Join(t.TempDir(), "in.mp4")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gen := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
		"-f", "lavfi", "-i", "color=c=blue:s=64x64:d=1", "-shortest", "-c:v", "mpeg4", "-c:a", "aac", src)
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("make sample: %v %s", err, out)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	st.put("input", "videos/clip.mp4", data)

	_, c := start(t, batch.Options{MaxSlots: 1})
	createPool(t, c, "ffmpeg", 1, 1, nil)
	createJob(t, c, "ffpipe", "ffmpeg", nil)
	tk := azbatch.CreateTaskContent{ID: to.Ptr("k1"),
		CommandLine:   to.Ptr("ffmpeg -nostdin -y -protocol_whitelist file -f mp4 -i input.mp4 -map 0:a:0 -c:a libmp3lame -xerror output.mp3"),
		ResourceFiles: []azbatch.ResourceFile{{HTTPURL: to.Ptr(st.blobSAS("input", "videos/clip.mp4")), FilePath: to.Ptr("input.mp4")}},
		OutputFiles: []azbatch.OutputFile{
			output("output.mp3", st.containerSAS("output"), "videos/clip.mp3", azbatch.OutputFileUploadConditionTaskSuccess),
			output("../std*.txt", st.containerSAS("logs"), "k1", azbatch.OutputFileUploadConditionTaskCompletion),
		},
		Constraints: &azbatch.TaskConstraints{MaxWallClockTime: to.Ptr("PT1M"), MaxTaskRetryCount: to.Ptr[int32](1)},
	}
	addTask(t, c, "ffpipe", tk)
	got := waitState(t, c, "ffpipe", "k1", azbatch.TaskStateCompleted)
	if *got.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
		t.Fatalf("got %+v %+v, want success", got.ExecutionInfo, got.ExecutionInfo.FailureInfo)
	}
	mp3, err := st.get("output", "videos/clip.mp3")
	if err != nil || len(mp3) < 1000 {
		t.Fatalf("output mp3: got %d bytes, %v", len(mp3), err)
	}
}
