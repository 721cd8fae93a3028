package media

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// mp3Args is the shape of the pipeline's hardened mp3 preset (argv without
// the program name).
func mp3Args(in, out string, extra ...string) []string {
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y",
		"-protocol_whitelist", "file", "-f", "mov", "-i", in,
		"-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1", "-xerror"}
	args = append(args, extra...)
	return append(args, "-c:a", "libmp3lame", "-q:a", "4", "-f", "mp3", out)
}

func TestVerifyAudio(t *testing.T) {
	needFFmpeg(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	in, err := Generate(ctx, dir, ClipSpec{Name: "in.mp4", Duration: 2 * time.Second, Width: 64, Height: 48, FPS: 10, SampleRate: 48000})
	if err != nil {
		t.Fatal(err)
	}
	multi, err := Generate(ctx, dir, ClipSpec{Name: "multi.mp4", Duration: 2 * time.Second, Width: 64, Height: 48, FPS: 10, AudioTracks: 2})
	if err != nil {
		t.Fatal(err)
	}
	want, err := ExpectedAudioDuration(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	transcode := func(name, src string, extra ...string) string {
		t.Helper()
		out := filepath.Join(dir, name)
		if err := runFFmpeg(ctx, mp3Args(src, out, extra...)); err != nil {
			t.Fatal(err)
		}
		return out
	}
	good := transcode("good.mp3", in)
	cut := transcode("cut.mp3", in, "-t", "1.5")
	track1 := transcode("track1.mp3", multi, "-map", "-0:a:0", "-map", "0:a:1")
	track0 := transcode("track0.mp3", multi)
	withVideo := filepath.Join(dir, "video.mp4")
	if err := runFFmpeg(ctx, []string{"-loglevel", "error", "-y", "-i", in, "-c", "copy", withVideo}); err != nil {
		t.Fatal(err)
	}
	notMedia := filepath.Join(dir, "text.mp3")
	if err := os.WriteFile(notMedia, []byte("hello, not audio\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		path    string
		codec   string
		dur     time.Duration
		wantErr bool
	}{
		{"good", good, "mp3", want, false},
		{"good-codec-case", good, "MP3", want, false},
		{"good-no-duration-check", good, "mp3", 0, false},
		{"wrong-codec", good, "aac", want, true},
		{"wrong-duration", good, "mp3", want + 500*time.Millisecond, true},
		{"cut-output", cut, "mp3", want, true},
		{"first-track", track0, "mp3", 2 * time.Second, false},
		{"wrong-track", track1, "mp3", 2 * time.Second, true},
		{"video-and-audio", withVideo, "aac", want, true},
		{"not-media", notMedia, "mp3", want, true},
		{"missing", filepath.Join(dir, "nope.mp3"), "mp3", want, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyAudio(ctx, tt.path, tt.codec, tt.dur, DefaultTolerance)
			if tt.wantErr {
				if !errors.Is(err, ErrVerify) {
					t.Errorf("got %v, want an ErrVerify", err)
				}
				return
			}
			if err != nil {
				t.Errorf("got %v, want nil", err)
			}
		})
	}

	// The padding the doc comment describes: metadata says the MP3 is
	// longer than the source; decoded, they agree.
	info, err := Probe(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	if raw := info.Streams[0].Duration; raw <= want {
		t.Errorf("raw mp3 duration %v not longer than source %v: padding model is off", raw, want)
	}
	decoded, err := DecodedAudioDuration(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	if diff := (decoded - want).Abs(); diff > 5*time.Millisecond {
		t.Errorf("decoded mp3 duration: got %v, want %v ± 5ms", decoded, want)
	}
}

// TestVerifyAudioLowRate is the case metadata gets wrong: at 8 kHz the MP3
// padding alone is > 0.1 s, yet the output is correct.
func TestVerifyAudioLowRate(t *testing.T) {
	needFFmpeg(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	in, err := Generate(ctx, dir, ClipSpec{Name: "low.mp4", Duration: 3 * time.Second, Width: 64, Height: 64, FPS: 1,
		SampleRate: 8000, Channels: 1, AudioBitrate: "16k", Noise: true, CacheDir: testCache})
	if err != nil {
		t.Fatal(err)
	}
	want, err := ExpectedAudioDuration(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "low.mp3")
	if err := runFFmpeg(ctx, mp3Args(in, out)); err != nil {
		t.Fatal(err)
	}
	if err := VerifyAudio(ctx, out, "mp3", want, DefaultTolerance); err != nil {
		t.Error(err)
	}
	info, err := Probe(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	src, err := Probe(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := info.AudioDuration()
	srcMeta, _ := src.AudioDuration()
	if diff := meta - srcMeta; diff <= DefaultTolerance {
		t.Logf("metadata difference %v is within tolerance on this ffmpeg; the decode is still the robust measure", diff)
	}
}

func TestVerifyImage(t *testing.T) {
	needFFmpeg(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	in, err := Generate(ctx, dir, tiny(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	jpg := filepath.Join(dir, "thumb.jpg")
	if err := runFFmpeg(ctx, []string{"-loglevel", "error", "-y", "-ss", "0.5", "-i", in, "-frames:v", "1", "-vf", "scale=32:-2", jpg}); err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(dir, "thumb.png")
	if err := runFFmpeg(ctx, []string{"-loglevel", "error", "-y", "-i", in, "-frames:v", "1", png}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		codec   string
		w, h    int
		wantErr bool
	}{
		{"jpeg-exact", jpg, "mjpeg", 32, 24, false},
		{"jpeg-any-height", jpg, "mjpeg", 32, 0, false},
		{"png-any", png, "", 0, 0, false},
		{"png-size", png, "png", 64, 48, false},
		{"wrong-codec", jpg, "png", 0, 0, true},
		{"wrong-size", png, "png", 32, 0, true},
		{"video-not-image", in, "", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyImage(ctx, tt.path, tt.codec, tt.w, tt.h)
			if tt.wantErr != (err != nil) {
				t.Errorf("got %v, want error: %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrVerify) {
				t.Errorf("got %v, want an ErrVerify", err)
			}
		})
	}
}
