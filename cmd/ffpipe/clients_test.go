package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/tooling/media"
	"github.com/ffpipe/ffpipe/internal/tooling/stack"
	"github.com/ffpipe/ffpipe/internal/tooling/stack/stacktest"
)

// TestClientCommands drives `ffpipe upload`, `ffpipe submit` and `ffpipe
// status` against a running local stack, as a user of `ffpipe dev` does.
func TestClientCommands(t *testing.T) {
	s := stacktest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	info := filepath.Join(t.TempDir(), "stack.json")
	if err := s.WriteInfo(info); err != nil {
		t.Fatal(err)
	}
	clips, err := media.GenerateSet(ctx, t.TempDir(), 2, 11, media.SetOptions{MinDuration: time.Second, MaxDuration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	keyRE := regexp.MustCompile(`key ([0-9a-f]{32})`)

	// upload: Event Grid → OnBlobCreated → … → done.
	var out bytes.Buffer
	if err := run(ctx, []string{"upload", "--info", info, "--prefix", "cli", clips[0].Path}, &out, &out); err != nil {
		t.Fatalf("upload: %v\n%s", err, out.String())
	}
	m := keyRE.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("upload printed no key: %q", out.String())
	}
	waitDone(ctx, t, info, m[1])

	// submit: a blob that Event Grid does not see (it is paused), so only
	// the message can start the work. Flags may follow the blob.
	if err := s.Stop(stack.EventGrid, false); err != nil {
		t.Fatal(err)
	}
	blob, err := s.Blob()
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := s.Config()
	data, err := media.Generate(ctx, t.TempDir(), media.ClipSpec{Name: "sub.mp4", Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blob.UploadBuffer(ctx, cfg.InputContainer, "cli/sub.mp4", mustRead(t, data), nil); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, []string{"submit", "--info", info, cfg.InputContainer + "/cli/sub.mp4", "--preset", "opus"}, &out, &out); err != nil {
		t.Fatalf("submit: %v\n%s", err, out.String())
	}
	m = keyRE.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("submit printed no key: %q", out.String())
	}
	rec := waitDone(ctx, t, info, m[1])
	if rec.Preset != "opus" || rec.Output.Blob != "cli/sub.opus" {
		t.Errorf("submitted record: preset %q output %q, want opus and cli/sub.opus", rec.Preset, rec.Output.Blob)
	}

	// upload --profile: the blob's metadata chooses the profile; the
	// record lists every output.
	out.Reset()
	if err := run(ctx, []string{"upload", "--info", info, "--prefix", "cli/web", clips[1].Path, "--profile", "web"}, &out, &out); err != nil {
		t.Fatalf("upload --profile: %v\n%s", err, out.String())
	}
	if m = keyRE.FindStringSubmatch(out.String()); m == nil {
		t.Fatalf("upload printed no key: %q", out.String())
	}
	rec = waitDone(ctx, t, info, m[1])
	if rec.Preset != "web" || len(rec.Outputs) != 2 || rec.Outputs[0].Height == 0 || !strings.HasSuffix(rec.Outputs[1].Blob, ".jpg") {
		t.Errorf("web record: profile %q outputs %+v, want an MP4 and a JPEG", rec.Preset, rec.Outputs)
	}

	// status: the three records are listed and counted, ended within the
	// last hour (the throughput line's total), with no failure.
	out.Reset()
	if err := run(ctx, []string{"status", "--info", info}, &out, &out); err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, want := range []string{"done 3", "cli/sub.mp4", "in a bin, 3 in all", "failures by reason (records of the last 90 days): none"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}

	// Bad input gets a clear error, not a crash.
	for _, args := range [][]string{
		{"submit", "--info", info, "no-slash"},
		{"submit", "--info", info, cfg.InputContainer + "/missing.mp4"},
		{"upload", "--info", info},
		{"upload", "--info", info, "--profile", "Web!", clips[0].Path},
		{"status", "--info", filepath.Join(t.TempDir(), "absent.json")},
	} {
		if err := run(ctx, args, &out, &out); err == nil {
			t.Errorf("%v: got no error", args)
		}
	}
}

// waitDone polls `ffpipe status --key` until the record is terminal and
// requires it to be done.
func waitDone(ctx context.Context, t *testing.T, info, key string) records.Record {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var out bytes.Buffer
		if err := run(ctx, []string{"status", "--info", info, "--key", key}, &out, &out); err == nil {
			var r records.Record
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("status --key printed no record: %v\n%s", err, out.String())
			}
			switch r.State {
			case records.StateDone:
				return r
			case records.StateFailed, records.StateRejected, records.StateBadRequest, records.StateInputMissing:
				t.Fatalf("record %s: state %s (%s), want done", key, r.State, r.Reason)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("record %s not done before the deadline", key)
		case <-tick.C:
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
