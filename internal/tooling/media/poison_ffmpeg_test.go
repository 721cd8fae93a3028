package media

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ffpipe/ffpipe/internal/failure"
)

// runHardened runs the hardened mp3 argv and returns whether ffmpeg exited
// 0 and its stderr.
func runHardened(ctx context.Context, t *testing.T, in, out string, extra ...string) (bool, string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, ffmpegBin, append(extra, mp3Args(in, out)...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatal(ctx.Err())
	}
	return err == nil, stderr.String()
}

// TestPoisonAgainstFFmpeg checks that the content cases behave as their
// notes say under the hardened argv (-protocol_whitelist file -f mov
// -map 0:a:0 -xerror) with the installed ffmpeg: what the pipeline will
// see. Name cases are the pipeline's business and are not run here.
func TestPoisonAgainstFFmpeg(t *testing.T) {
	needFFmpeg(t)
	ctx := testCtx(t)
	cases, err := poisonFixture()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	for _, c := range cases {
		if strings.HasPrefix(c.ID, "name-") || strings.HasPrefix(c.ID, "suffix-") {
			continue
		}
		t.Run(c.ID, func(t *testing.T) {
			dst := filepath.Join(out, c.ID+".mp3")
			ok, stderr := runHardened(ctx, t, c.Path, dst)
			switch {
			case c.ID == "audio-ac3":
				// Depends on the preset's codec whitelist (the fixture
				// expects Failed); this argv has none, so it converts.
				if !ok {
					t.Errorf("ffmpeg failed: %s", stderr)
				}
			case c.Expect.Outcome.Has(Done):
				if !ok {
					t.Fatalf("ffmpeg failed: %s", stderr)
				}
				if err := VerifyAudio(ctx, dst, "mp3", c.AudioDuration, DefaultTolerance); err != nil {
					t.Error(err)
				}
			case c.Expect.ReasonContains == failure.DecodeError:
				// ffmpeg 5.1 may exit 0 here; it must at least say so.
				if ok && !strings.Contains(stderr, "partial file") {
					t.Errorf("ffmpeg exited 0 and printed %q: no signal for the pipeline to detect the truncation", stderr)
				}
			case c.Expect.Outcome == Rejected && c.Size > 0:
				// size-above-cap: valid media, rejected on size alone.
				if !ok {
					t.Errorf("padded clip is not valid media: %s", stderr)
				}
			default:
				if ok {
					t.Errorf("ffmpeg exited 0, want a failure (%s)", c.Expect)
				}
			}
		})
	}
	if n := canaryHits.Load(); n != 0 {
		t.Errorf("canary URL got %d requests under the hardened argv, want 0", n)
	}

	// The playlists really are playlists: an auto-probing ffmpeg picks the
	// hls and concat demuxers (this build then refuses the segments).
	for id, demuxer := range map[string]string{"hls-playlist": "[hls", "ffconcat-script": "[concat"} {
		for _, c := range cases {
			if c.ID != id {
				continue
			}
			cmd := exec.CommandContext(ctx, ffmpegBin, "-hide_banner", "-nostdin", "-loglevel", "error",
				"-i", c.Path, "-f", "null", "-")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			_ = cmd.Run()
			if !strings.Contains(stderr.String(), demuxer) {
				t.Errorf("%s: auto-probing stderr %q does not mention %s", id, stderr.String(), demuxer)
			}
		}
	}
}
