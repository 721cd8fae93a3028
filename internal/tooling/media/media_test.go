package media

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// testCache is shared by tests whose clips repeat (the poison sets), so the
// suite encodes each spec once.
var testCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ffpipe-media-test-")
	if err != nil {
		panic(err)
	}
	testCache = dir
	code := m.Run()
	if canaryServer != nil {
		canaryServer.Close()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// needFFmpeg skips when ffmpeg/ffprobe are missing (make deps installs them).
func needFFmpeg(t *testing.T) {
	t.Helper()
	for _, bin := range []string{ffmpegBin, ffprobeBin} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed: %v", bin, err)
		}
	}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// tiny is a cheap clip for tests.
func tiny(d time.Duration) ClipSpec {
	return ClipSpec{Duration: d, Width: 64, Height: 48, FPS: 10}
}

func TestGenerateProbe(t *testing.T) {
	needFFmpeg(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	tests := []struct {
		name       string
		spec       ClipSpec
		wantVideo  int
		wantAudio  int
		wantDur    time.Duration
		wantRate   int
		wantChans  int
		wantACodec string
	}{
		{"default-av", ClipSpec{Name: "a.mp4", Duration: time.Second, Width: 64, Height: 48, FPS: 10}, 1, 1, time.Second, 44100, 2, "aac"},
		{"mono-48k", ClipSpec{Name: "b.mp4", Duration: 1500 * time.Millisecond, Width: 64, Height: 48, FPS: 10, SampleRate: 48000, Channels: 1, Noise: true}, 1, 1, 1500 * time.Millisecond, 48000, 1, "aac"},
		{"no-audio", ClipSpec{Name: "c.mp4", Duration: time.Second, Width: 64, Height: 48, FPS: 10, NoAudio: true}, 1, 0, 0, 0, 0, ""},
		{"audio-only", ClipSpec{Name: "d.mp4", Duration: time.Second, NoVideo: true}, 0, 1, time.Second, 44100, 2, "aac"},
		{"three-tracks", ClipSpec{Name: "e.mp4", Duration: 2 * time.Second, Width: 64, Height: 48, FPS: 10, AudioTracks: 3}, 1, 3, 2 * time.Second, 44100, 2, "aac"},
		{"ac3", ClipSpec{Name: "f.mp4", Duration: time.Second, Width: 64, Height: 48, FPS: 10, AudioCodec: "ac3", AudioBitrate: "96k"}, 1, 1, time.Second, 44100, 2, "ac3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Generate(ctx, dir, tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := filepath.Base(p), tt.spec.Name; got != want {
				t.Errorf("file name: got %q, want %q", got, want)
			}
			info, err := Probe(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(info.VideoStreams()); got != tt.wantVideo {
				t.Errorf("video streams: got %d, want %d (%s)", got, tt.wantVideo, describe(info))
			}
			if got := len(info.AudioStreams()); got != tt.wantAudio {
				t.Errorf("audio streams: got %d, want %d (%s)", got, tt.wantAudio, describe(info))
			}
			if tt.wantVideo > 0 {
				v := info.VideoStreams()[0]
				if v.CodecName != "h264" || v.Width != 64 || v.Height != 48 {
					t.Errorf("video: got %s %dx%d, want h264 64x48", v.CodecName, v.Width, v.Height)
				}
			}
			if tt.wantAudio == 0 {
				if _, ok := info.AudioDuration(); ok {
					t.Errorf("AudioDuration ok without audio")
				}
				return
			}
			a := info.AudioStreams()[0]
			if a.CodecName != tt.wantACodec || a.SampleRate != tt.wantRate || a.Channels != tt.wantChans {
				t.Errorf("audio: got %s %d Hz %d ch, want %s %d Hz %d ch", a.CodecName, a.SampleRate, a.Channels, tt.wantACodec, tt.wantRate, tt.wantChans)
			}
			d, _ := info.AudioDuration()
			if diff := (d - tt.wantDur).Abs(); diff > 50*time.Millisecond {
				t.Errorf("audio duration: got %v, want %v", d, tt.wantDur)
			}
			for i, s := range info.AudioStreams()[1:] {
				if diff := (s.Duration - tt.wantDur/2).Abs(); diff > 50*time.Millisecond {
					t.Errorf("extra track %d duration: got %v, want %v", i+1, s.Duration, tt.wantDur/2)
				}
			}
		})
	}
}

func TestGenerateDeterministicAndCached(t *testing.T) {
	needFFmpeg(t)
	ctx := testCtx(t)
	cache := t.TempDir()
	spec := tiny(time.Second)
	spec.CacheDir = cache
	a, err := Generate(ctx, t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != spec.Key()+".mp4" {
		t.Fatalf("cache entries: got %v, want [%s.mp4]", entries, spec.Key())
	}
	st1, err := os.Stat(filepath.Join(cache, entries[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	if got := st1.Mode().Perm(); got != 0o444 {
		t.Errorf("cache entry mode: got %v, want 0444", got)
	}
	// Second run: served from the cache (same file, untouched).
	b, err := Generate(ctx, t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	st2, err := os.Stat(filepath.Join(cache, entries[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	if !st2.ModTime().Equal(st1.ModTime()) || !os.SameFile(st1, st2) {
		t.Errorf("cache entry was regenerated")
	}
	// Without a cache the same spec gives the same bytes.
	nc := spec
	nc.CacheDir = ""
	c, err := Generate(ctx, t.TempDir(), nc)
	if err != nil {
		t.Fatal(err)
	}
	ba, bb, bc := mustRead(t, a), mustRead(t, b), mustRead(t, c)
	if !bytes.Equal(ba, bb) || !bytes.Equal(ba, bc) {
		t.Errorf("same spec, different bytes: %d/%d/%d bytes", len(ba), len(bb), len(bc))
	}
	other := nc
	other.ToneHz = 880
	if other.Key() == nc.Key() {
		t.Errorf("Key ignores ToneHz")
	}
	named := nc
	named.Name, named.CacheDir = "x.mp4", "/elsewhere"
	if named.Key() != nc.Key() {
		t.Errorf("Key depends on Name/CacheDir")
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGenerateBadSpec(t *testing.T) {
	tests := []struct {
		name string
		spec ClipSpec
	}{
		{"no-streams", ClipSpec{NoAudio: true, NoVideo: true}},
		{"odd-size", ClipSpec{Width: 63, Height: 48}},
		{"path-name", ClipSpec{Name: "../x.mp4"}},
		{"too-many-tracks", ClipSpec{AudioTracks: 17}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Generate(t.Context(), t.TempDir(), tt.spec)
			if !errors.Is(err, ErrBadSpec) {
				t.Errorf("got %v, want ErrBadSpec", err)
			}
		})
	}
}

func TestGenerateSet(t *testing.T) {
	needFFmpeg(t)
	ctx := testCtx(t)
	opts := SetOptions{
		Base:        ClipSpec{Width: 64, Height: 48, FPS: 5, CacheDir: t.TempDir()},
		MinDuration: time.Second, MaxDuration: 2 * time.Second,
	}
	dir := t.TempDir()
	clips, err := GenerateSet(ctx, dir, 4, 7, opts)
	if err != nil {
		t.Fatal(err)
	}
	again, err := GenerateSet(ctx, t.TempDir(), 4, 7, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(clips) != 4 {
		t.Fatalf("got %d clips, want 4", len(clips))
	}
	seen := map[string]bool{}
	for i, c := range clips {
		if want := []string{"clip-000.mp4", "clip-001.mp4", "clip-002.mp4", "clip-003.mp4"}[i]; c.Name != want {
			t.Errorf("clip %d name: got %q, want %q", i, c.Name, want)
		}
		if c.Path != filepath.Join(dir, c.Name) {
			t.Errorf("clip %d path: got %q", i, c.Path)
		}
		if c.Spec.Duration < time.Second || c.Spec.Duration > 2*time.Second {
			t.Errorf("clip %d duration %v outside [1s, 2s]", i, c.Spec.Duration)
		}
		if again[i].Spec.Duration != c.Spec.Duration {
			t.Errorf("clip %d: same seed, durations %v and %v", i, c.Spec.Duration, again[i].Spec.Duration)
		}
		b := string(mustRead(t, c.Path))
		if seen[b] {
			t.Errorf("clip %d has the same bytes as an earlier clip", i)
		}
		seen[b] = true
		d, err := ExpectedAudioDuration(ctx, c.Path)
		if err != nil {
			t.Fatal(err)
		}
		if diff := (d - c.Spec.Duration).Abs(); diff > 50*time.Millisecond {
			t.Errorf("clip %d audio: got %v, want %v", i, d, c.Spec.Duration)
		}
	}
}

func TestGenerateCancelledLeavesNothing(t *testing.T) {
	needFFmpeg(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	dir := t.TempDir()
	if _, err := Generate(ctx, dir, tiny(time.Second)); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("got %d files after a cancelled Generate, want 0", len(entries))
	}
}

func TestGenerateSetCancelled(t *testing.T) {
	needFFmpeg(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := GenerateSet(ctx, t.TempDir(), 3, 1, SetOptions{Base: tiny(time.Second)})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}
