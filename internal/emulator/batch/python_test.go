package batch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite/azuritetest"
	"github.com/ffpipe/ffpipe/internal/emulator/batch"
)

// systemPython is Debian's interpreter, whose python3-azure package ships
// azure-batch 13 and azure-storage-blob 12 (`make deps` installs it).
const systemPython = "/usr/bin/python3"

// requirePythonAzure skips only when the interpreter lacks the Azure SDK
// modules; on a machine set up by `make deps` it is there.
func requirePythonAzure(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, systemPython, "-c", "import azure.batch, azure.storage.blob").CombinedOutput()
	if err != nil {
		t.Skipf("%s cannot import azure.batch and azure.storage.blob (install Debian's python3-azure: make deps): %v %s",
			systemPython, err, bytes.TrimSpace(out))
	}
}

// workflowSummary is the JSON line ffmpeg_workflow.py prints at the end.
type workflowSummary struct {
	SupportedImages []string `json:"supportedImages"`
	Image           string   `json:"image"`
	Pool            struct {
		AllocationState  string   `json:"allocationState"`
		LowPriorityNodes int      `json:"lowPriorityNodes"`
		ResizeErrors     []string `json:"resizeErrors"`
	} `json:"pool"`
	NodeCounts *struct {
		LowPriorityIdle  int `json:"lowPriorityIdle"`
		LowPriorityTotal int `json:"lowPriorityTotal"`
	} `json:"nodeCounts"`
	Added        []string  `json:"added"`
	Tasks        []string  `json:"tasks"`
	Outputs      []string  `json:"outputs"`
	JobDeletion  deletions `json:"jobDeletion"`
	PoolDeletion deletions `json:"poolDeletion"`
}

type deletions struct {
	States      []string `json:"states"`
	WriteErrors []string `json:"writeErrors"`
	Gone        bool     `json:"gone"`
}

// TestPythonFFmpegWorkflow drives the stand-in through the Python
// azure-batch SDK (Shared Key auth) with the ffmpeg tutorial's workflow:
// upload to Azurite, supported images, a pool with a start task, a job,
// add_collection with resource and output files, poll, download, delete.
func TestPythonFFmpegWorkflow(t *testing.T) {
	requirePythonAzure(t)
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg is required: %v", err)
	}
	az := azuritetest.Start(t)
	s, c := start(t, batch.Options{MaxSlots: 2, AccountName: "ffpipelocal"})
	inputs, outputs := t.TempDir(), t.TempDir()
	names := []string{"LowPriVMs-1.mp4", "LowPriVMs-2.mp4", "LowPriVMs-3.mp4"}
	for i, name := range names {
		makeMP4(t, filepath.Join(inputs, name), 300+100*i)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, systemPython, filepath.Join("testdata", "python", "ffmpeg_workflow.py"))
	cmd.Env = append(os.Environ(),
		"BATCH_URL="+s.URL(), "BATCH_ACCOUNT_NAME="+s.AccountName(), "BATCH_ACCOUNT_KEY="+s.AccountKey(),
		"STORAGE_CONNECTION_STRING="+az.ConnectionString(), "INPUT_DIR="+inputs, "OUTPUT_DIR="+outputs,
		"POOL_NODES=2", "WORKFLOW_TIMEOUT_SECONDS=240", "PYTHONDONTWRITEBYTECODE=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("python workflow: %v (context: %v)\nstderr:\n%s\nstdout:\n%s", err, ctx.Err(), stderr.String(), stdout.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var sum workflowSummary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("summary: %v in %q", err, stdout.String())
	}
	t.Logf("python workflow log:\n%s\nsummary: %s", stderr.String(), lines[len(lines)-1])

	checks := []struct {
		name      string
		got, want any
	}{
		{"image picked from the listing", sum.Image, "canonical/0001-com-ubuntu-server-jammy/22_04-lts batch.node.ubuntu 22.04"},
		{"images listed", len(sum.SupportedImages), 4},
		{"pool allocation", sum.Pool.AllocationState, "steady"},
		{"pool nodes", sum.Pool.LowPriorityNodes, 2},
		{"pool resize errors", len(sum.Pool.ResizeErrors), 0},
		{"node counts", sum.NodeCounts != nil && sum.NodeCounts.LowPriorityIdle == 2 && sum.NodeCounts.LowPriorityTotal == 2, true},
		{"tasks added", strings.Join(sum.Added, ","), "Task0 success,Task1 success,Task2 success"},
		{"tasks completed", strings.Join(sum.Tasks, ","), "Task0 success exit=0,Task1 success exit=0,Task2 success exit=0"},
		{"outputs downloaded", strings.Join(sum.Outputs, ","), "LowPriVMs-1.mp3,LowPriVMs-2.mp3,LowPriVMs-3.mp3"},
		{"job gone", sum.JobDeletion.Gone, true},
		{"pool gone", sum.PoolDeletion.Gone, true},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: got %v, want %v", ck.name, ck.got, ck.want)
		}
	}
	// While deleting, a write is refused with the Batch code (if the client
	// saw the deleting state at all; the deletion delay is 1 s).
	for what, d := range map[string]struct {
		deletions
		code string
	}{"job": {sum.JobDeletion, "JobBeingDeleted"}, "pool": {sum.PoolDeletion, "PoolBeingDeleted"}} {
		if len(d.States) > 0 && d.States[0] != "deleting" || len(d.States) > 1 {
			t.Errorf("%s: got states %v while deleting, want [deleting] or none", what, d.States)
		}
		for _, code := range d.WriteErrors {
			if code != d.code && !strings.HasSuffix(code, "NotFound") {
				t.Errorf("%s: got write error %s while deleting, want %s", what, code, d.code)
			}
		}
	}
	for _, name := range sum.Outputs {
		checkMP3(t, filepath.Join(outputs, name))
	}
	// The Go SDK sees the same end state.
	_, err := c.GetJob(ctxT(t), "LinuxFfmpegJob", nil)
	wantCode(t, err, 404, "JobNotFound")
	_, err = c.GetPool(ctxT(t), "LinuxFfmpegPool", nil)
	wantCode(t, err, 404, "PoolNotFound")
}

// makeMP4 writes a short MP4 with a tone of freq Hz and a video track.
func makeMP4(t *testing.T, path string, freq int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	gen := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "sine=frequency="+strconv.Itoa(freq)+":duration=1", "-f", "lavfi", "-i", "color=c=blue:s=64x64:d=1",
		"-shortest", "-c:v", "mpeg4", "-c:a", "aac", path)
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v %s", path, err, out)
	}
}

// checkMP3 asks ffprobe for the audio codec of path.
func checkMP3(t *testing.T, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-select_streams", "a:0",
		"-show_entries", "stream=codec_name", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	if got := strings.TrimSpace(string(out)); got != "mp3" {
		t.Errorf("%s: got audio codec %q, want mp3", filepath.Base(path), got)
	}
}
