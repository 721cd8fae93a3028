package media

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBaseline(t *testing.T) {
	needFFmpeg(t)
	ctx := testCtx(t)
	clips, err := GenerateSet(ctx, t.TempDir(), 3, 11, SetOptions{
		Base:        ClipSpec{Width: 64, Height: 48, FPS: 10, CacheDir: testCache},
		MinDuration: time.Second, MaxDuration: 1500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	files := make([]string, len(clips))
	for i, c := range clips {
		files[i] = c.Path
	}
	keep := t.TempDir()
	var mu sync.Mutex
	var outs []string
	// Write where the test can check the results, besides using out.
	argv := func(in, out string) []string {
		mu.Lock()
		defer mu.Unlock()
		outs = append(outs, out)
		return append([]string{"ffmpeg"}, mp3Args(in, filepath.Join(keep, filepath.Base(in)+".mp3"))...)
	}
	wall, timings, err := BaselineDetail(ctx, files, argv, 2)
	if err != nil {
		t.Fatal(err)
	}
	if wall <= 0 {
		t.Errorf("wall: got %v, want > 0", wall)
	}
	if len(timings) != len(files) {
		t.Fatalf("timings: got %d, want %d", len(timings), len(files))
	}
	for i, tm := range timings {
		if tm.Wall <= 0 {
			t.Errorf("file %d: wall %v", i, tm.Wall)
		}
		want, err := ExpectedAudioDuration(ctx, files[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyAudio(ctx, filepath.Join(keep, filepath.Base(files[i])+".mp3"), "mp3", want, DefaultTolerance); err != nil {
			t.Errorf("file %d: %v", i, err)
		}
	}
	if len(outs) != len(files) {
		t.Errorf("argvFor called %d times, want %d", len(outs), len(files))
	}
	for _, o := range outs {
		if filepath.Ext(o) != "" {
			t.Errorf("out %q has an extension, want none", o)
		}
		if _, err := os.Stat(filepath.Dir(o)); !os.IsNotExist(err) {
			t.Errorf("baseline temp dir %s left behind (%v)", filepath.Dir(o), err)
		}
	}

	t.Run("plain-argv-and-default-parallel", func(t *testing.T) {
		d, err := Baseline(ctx, files[:1], func(in, out string) []string { return mp3Args(in, out+".mp3") }, 0)
		if err != nil || d <= 0 {
			t.Errorf("got %v, %v; want a duration and no error", d, err)
		}
	})

	t.Run("failure", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.mp4")
		if err := os.WriteFile(bad, []byte("not media"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Baseline(ctx, append([]string{bad}, files...), func(in, out string) []string { return mp3Args(in, out+".mp3") }, 2)
		if err == nil || !strings.Contains(err.Error(), "bad.mp4") || !strings.Contains(err.Error(), "Invalid data") {
			t.Errorf("got %v, want an error naming bad.mp4 with ffmpeg's message", err)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := Baseline(cctx, files, func(in, out string) []string { return mp3Args(in, out+".mp3") }, 2)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})

	t.Run("empty-argv", func(t *testing.T) {
		_, err := TimeFFmpeg(ctx, files[0], func(in, out string) []string { return []string{"ffmpeg"} })
		if !errors.Is(err, ErrBadSpec) {
			t.Errorf("got %v, want ErrBadSpec", err)
		}
	})
}

func TestTimeFFmpeg(t *testing.T) {
	needFFmpeg(t)
	ctx := testCtx(t)
	in, err := Generate(ctx, t.TempDir(), ClipSpec{Duration: time.Second, Width: 64, Height: 48, FPS: 10, CacheDir: testCache})
	if err != nil {
		t.Fatal(err)
	}
	var outPath string
	tm, err := TimeFFmpeg(ctx, in, func(in, out string) []string {
		outPath = out + ".mp3"
		return mp3Args(in, outPath)
	})
	if err != nil {
		t.Fatal(err)
	}
	if tm.Wall <= 0 || tm.User+tm.System <= 0 {
		t.Errorf("got %+v, want positive wall and CPU time", tm)
	}
	if _, err := os.Stat(outPath); !os.IsNotExist(err) {
		t.Errorf("output %s left behind (%v)", outPath, err)
	}
}
