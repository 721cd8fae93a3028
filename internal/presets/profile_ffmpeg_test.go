package presets

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

var clips struct {
	sync.Mutex
	dir string
}

// clip generates (once per test binary) an MP4 of the given size and
// length with H.264 video and, unless silent, AAC audio; w == 0 makes an
// audio-only file.
func clip(t *testing.T, w, h int, secs float64, fps int, silent bool) []byte {
	t.Helper()
	needFFmpeg(t)
	clips.Lock()
	defer clips.Unlock()
	if clips.dir == "" {
		d, err := os.MkdirTemp("", "ffpipe-profiles-")
		if err != nil {
			t.Fatal(err)
		}
		clips.dir = d
	}
	name := fmt.Sprintf("%dx%d-%g-%d-%v.mp4", w, h, secs, fps, silent)
	path := filepath.Join(clips.dir, name)
	if b, err := os.ReadFile(path); err == nil {
		return b
	}
	d := fmt.Sprint(secs)
	var args []string
	if w > 0 {
		args = append(args, "-f", "lavfi", "-i", fmt.Sprintf("testsrc=duration=%s:size=%dx%d:rate=%d", d, w, h, fps))
	}
	if !silent {
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:duration="+d)
	}
	if w > 0 {
		args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
	}
	if !silent {
		args = append(args, "-c:a", "aac")
	}
	args = append(args, "-movflags", "+faststart", name)
	if out, err := runIn(clips.dir, append([]string{"ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"}, args...)); err != nil {
		t.Fatalf("generate %s: %v\n%s", name, err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func profile(t *testing.T, name string) Profile {
	t.Helper()
	p, ok := DefaultProfiles().Get(name)
	if !ok {
		t.Fatalf("no profile %s", name)
	}
	return p
}

// The built-in profiles run through their real task command lines on
// generated media: the outputs, heights and rungs the issue asks for, and
// the deterministic failures for inputs a profile cannot use.
func TestProfilesRunTask(t *testing.T) {
	tests := []struct {
		name    string
		profile string
		input   func(t *testing.T) []byte
		code    string   // "" = success
		files   []string // present on success
		heights map[int][]int
	}{
		{"web 720p", "web", func(t *testing.T) []byte { return clip(t, 1280, 720, 2, 10, false) }, "",
			[]string{"output.mp4", "output-1.jpg"}, map[int][]int{0: {720}, 1: {180}}},
		{"web 1080p scaled to 720", "web", func(t *testing.T) []byte { return clip(t, 1920, 1080, 1, 5, false) }, "",
			[]string{"output.mp4", "output-1.jpg"}, map[int][]int{0: {720}}},
		{"web 240p never upscaled", "web", func(t *testing.T) []byte { return clip(t, 320, 240, 1, 10, true) }, "",
			[]string{"output.mp4"}, map[int][]int{0: {240}}},
		{"web audio-only", "web", func(t *testing.T) []byte { return clip(t, 0, 0, 1, 0, false) }, "no_video", nil, nil},
		{"hls audio-only", "hls", func(t *testing.T) []byte { return clip(t, 0, 0, 1, 0, false) }, "no_video", nil, nil},
		{"hls below the lowest rung", "hls", func(t *testing.T) []byte { return clip(t, 320, 240, 1, 10, false) }, "no_rung", nil, nil},
		{"hls 720p: no 1080p rung", "hls", func(t *testing.T) []byte { return clip(t, 1280, 720, 8, 10, false) }, "",
			[]string{"hls/master.m3u8", "hls/360p/index.m3u8", "hls/540p/index.m3u8", "hls/720p/index.m3u8"}, map[int][]int{0: {360, 540, 720}}},
		{"hls 4K: no 4K rung", "hls", func(t *testing.T) []byte { return clip(t, 3840, 2160, 1, 2, false) }, "",
			[]string{"hls/360p/index.m3u8", "hls/1080p/index.m3u8"}, map[int][]int{0: {360, 540, 720, 1080}}},
		{"hls silent video", "hls", func(t *testing.T) []byte { return clip(t, 640, 360, 2, 10, true) }, "",
			[]string{"hls/master.m3u8", "hls/360p/index.m3u8"}, map[int][]int{0: {360}}},
		{"podcast audio-only: no thumbnail", "podcast", func(t *testing.T) []byte { return clip(t, 0, 0, 1, 0, false) }, "",
			[]string{"output.mp3", "output-1.opus"}, nil},
		{"podcast silent video", "podcast", func(t *testing.T) []byte { return clip(t, 320, 240, 1, 10, true) }, "no_audio", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := profile(t, tt.profile)
			exit, out, dir := runTask(t, p, tt.input(t))
			if exit != 0 {
				t.Fatalf("exit %d, want 0\n%s", exit, out)
			}
			r := readResult(t, dir)
			if tt.code != "" {
				if r.OK || r.Code != tt.code {
					t.Fatalf("result ok=%v code %q, want failed %s\n%s", r.OK, r.Code, tt.code, out)
				}
				if left := outputsLeft(t, dir); len(left) > 0 {
					t.Errorf("a failed task left %v", left)
				}
				return
			}
			if !r.OK {
				t.Fatalf("result failed %s: %s\n%s", r.Code, r.Message, out)
			}
			for _, f := range tt.files {
				if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
					t.Errorf("output %s missing or empty (%v)", f, err)
				}
			}
			for idx, want := range tt.heights {
				var got []int
				for _, o := range r.Outputs {
					if o.Index == idx && !o.Skipped {
						got = append(got, o.Height)
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("output %d heights %v, want %v", idx, got, want)
				}
			}
			for _, o := range r.Outputs {
				if o.Duration > 0 && !near(o.Duration, r.Source.Duration) {
					t.Errorf("output %d duration %.3f, source %.3f", o.Index, o.Duration, r.Source.Duration)
				}
			}
			if p.HLS() >= 0 {
				checkLadder(t, dir, tt.heights[0])
			}
		})
	}
}

func near(a, b float64) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	return d <= DurationSlack+b*DurationTolerancePermille/1000
}

func outputsLeft(t *testing.T, dir string) []string {
	t.Helper()
	var left []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if n := e.Name(); strings.HasPrefix(n, OutputBase) || n == HLSDir {
			left = append(left, n)
		}
	}
	return left
}

// checkLadder: the master lists exactly the kept rungs; every rung has the
// same segment durations (keyframes aligned: segments cut at the same
// times) and every segment starts with a keyframe.
func checkLadder(t *testing.T, dir string, heights []int) {
	t.Helper()
	master, err := os.ReadFile(filepath.Join(dir, HLSDir, HLSMaster))
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, l := range strings.Split(string(master), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			listed = append(listed, l)
		}
	}
	var want []string
	for _, h := range heights {
		want = append(want, fmt.Sprintf("%dp/%s", h, HLSPlaylist))
	}
	if !slices.Equal(listed, want) {
		t.Errorf("master lists %v, want %v", listed, want)
	}
	var first []string
	for i, h := range heights {
		rdir := filepath.Join(dir, HLSDir, fmt.Sprintf("%dp", h))
		pl, err := os.ReadFile(filepath.Join(rdir, HLSPlaylist))
		if err != nil {
			t.Fatal(err)
		}
		var durs []string
		for _, l := range strings.Split(string(pl), "\n") {
			if strings.HasPrefix(l, "#EXTINF:") {
				durs = append(durs, l)
			} else if l != "" && !strings.HasPrefix(l, "#") {
				out, err := runIn(rdir, []string{"ffprobe", "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1",
					"-show_entries", "packet=flags", "-of", "csv=p=0", l})
				if err != nil || !strings.HasPrefix(strings.TrimSpace(out), "K") {
					t.Errorf("%dp %s does not start with a keyframe: %q %v", h, l, out, err)
				}
			}
		}
		if i == 0 {
			first = durs
		} else if !slices.Equal(durs, first) {
			t.Errorf("%dp segments %v, %dp %v: not aligned", h, durs, heights[0], first)
		}
	}
}

// A 10 s source gives two segments per rung (6 s + 4 s) and a 4 s one a
// single segment: short ladders are fine.
func TestProfilesShortHLS(t *testing.T) {
	for _, secs := range []float64{4, 10} {
		t.Run(fmt.Sprint(secs), func(t *testing.T) {
			p := profile(t, "hls")
			p.Outputs[0].Ladder = []int{360}
			exit, out, dir := runTask(t, p, clip(t, 640, 360, secs, 5, false))
			if r := readResult(t, dir); exit != 0 || !r.OK {
				t.Fatalf("exit %d result %+v\n%s", exit, r, out)
			}
			segs, _ := filepath.Glob(filepath.Join(dir, HLSDir, "360p", "seg_*.ts"))
			if want := int((secs + SegmentSeconds - 1) / SegmentSeconds); len(segs) != want {
				t.Errorf("%d segments, want %d", len(segs), want)
			}
		})
	}
}
