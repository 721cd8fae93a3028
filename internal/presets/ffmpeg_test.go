package presets

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests run the real ffmpeg (the Debian package) with each preset's
// argv, exactly as a Batch node would: in a working directory holding
// input.mp4, no shell.

var sample struct {
	once sync.Once
	dir  string
	err  error
}

func needFFmpeg(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (make deps installs it): %v", bin, err)
		}
	}
}

// sampleFile returns the path of a generated media file of the given
// kind ("av": H.264 video + AAC audio, "video": video only), made once.
func sampleFile(t *testing.T, kind string) string {
	t.Helper()
	needFFmpeg(t)
	sample.once.Do(func() {
		sample.dir, sample.err = os.MkdirTemp("", "ffpipe-presets-")
		if sample.err != nil {
			return
		}
		gen := [][]string{
			{"-f", "lavfi", "-i", "testsrc=duration=1:size=160x120:rate=10", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
				"-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", "av.mp4"},
			{"-f", "lavfi", "-i", "testsrc=duration=1:size=160x120:rate=10", "-c:v", "libx264", "-pix_fmt", "yuv420p", "video.mp4"},
			// moov first: cut short, it still demuxes and ffmpeg exits 0
			{"-f", "lavfi", "-i", "testsrc=duration=4:size=160x120:rate=10", "-f", "lavfi", "-i", "sine=frequency=440:duration=4",
				"-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", "-movflags", "+faststart", "faststart.mp4"},
		}
		for _, g := range gen {
			out, err := runIn(sample.dir, append([]string{"ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"}, g...))
			if err != nil {
				sample.err = err
				sample.dir += " (" + out + ")"
				return
			}
		}
	})
	if sample.err != nil {
		t.Fatalf("generate samples in %s: %v", sample.dir, sample.err)
	}
	return filepath.Join(sample.dir, kind+".mp4")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sample.dir != "" {
		os.RemoveAll(strings.SplitN(sample.dir, " ", 2)[0])
	}
	os.Exit(code)
}

func runIn(dir string, argv []string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdin = nil
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// workdir makes a task-like working directory with input.mp4.
func workdir(t *testing.T, input []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, InputFile), input, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func probe(t *testing.T, file string) string {
	t.Helper()
	out, err := runIn(filepath.Dir(file), []string{"ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name", "-of", "csv=p=0", filepath.Base(file)})
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", file, err, out)
	}
	return strings.TrimSpace(out)
}

func TestPresetsRunFFmpeg(t *testing.T) {
	input, err := os.ReadFile(sampleFile(t, "av"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"mp3":       "mp3,audio",
		"aac":       "aac,audio",
		"opus":      "opus,audio",
		"wav":       "pcm_s16le,audio",
		"thumbnail": "mjpeg,video",
		"mp4-720":   "h264,video\naac,audio",
	}
	s := Default()
	for _, name := range s.Names() {
		t.Run(name, func(t *testing.T) {
			p, _ := s.Get(name)
			if p.Kind == KindHLS {
				t.Skip("an HLS ladder runs through its task command line (TestProfilesRunTask)")
			}
			dir := workdir(t, input)
			// Split the joined command line the way a shell-less node does.
			argv := strings.Split(p.CommandLine(), " ")
			out, err := runIn(dir, argv)
			if err != nil {
				t.Fatalf("ffmpeg failed: %v\n%s", err, out)
			}
			// The decoder of the stream the preset does not use stays
			// closed even during probing (docs/presets.md#the-batch-task, an
			// UNCONFIRMED item there): ffmpeg reports the refusal.
			if unused := map[Kind]string{KindAudio: "h264", KindImage: "aac"}[p.Kind]; unused != "" && !strings.Contains(out, "Codec ("+unused+") not on whitelist") {
				t.Errorf("no sign that the %s decoder was refused; stderr:\n%s", unused, out)
			}
			got := probe(t, filepath.Join(dir, p.OutputFile()))
			if got != want[name] {
				t.Errorf("output streams = %q, want %q", got, want[name])
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 3 {
				t.Errorf("working directory has %d entries, want 3 (input, output and %s)", len(entries), ProgressFile)
			}
			// -progress: ffmpeg's last block ends the run.
			if b, err := os.ReadFile(filepath.Join(dir, ProgressFile)); err != nil || !strings.Contains(string(b), "progress=end") || !strings.Contains(string(b), "out_time_us=") {
				t.Errorf("%s: got %q, %v; want ffmpeg's progress ending in progress=end", ProgressFile, b, err)
			}
		})
	}
}

func TestPresetsRejectBadInputs(t *testing.T) {
	needFFmpeg(t)
	videoOnly, err := os.ReadFile(sampleFile(t, "video"))
	if err != nil {
		t.Fatal(err)
	}
	hls := []byte("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n")
	concat := []byte("ffconcat version 1.0\nfile '/etc/passwd'\n")
	tests := []struct {
		name   string
		preset string
		input  []byte
	}{
		{"no audio stream", "mp3", videoOnly},
		{"random bytes", "mp3", bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 4096)},
		{"empty file", "mp3", nil},
		{"HLS playlist named .mp4", "mp3", hls},
		{"concat script named .mp4", "aac", concat},
		{"text for a thumbnail", "thumbnail", []byte("hello")},
	}
	s := Default()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := s.Get(tt.preset)
			dir := workdir(t, tt.input)
			out, err := runIn(dir, p.Argv())
			if err == nil {
				t.Fatalf("ffmpeg succeeded, want failure; output:\n%s", out)
			}
			if _, err := os.Stat(filepath.Join(dir, p.OutputFile())); err == nil {
				if fi, _ := os.Stat(filepath.Join(dir, p.OutputFile())); fi.Size() > 0 {
					t.Errorf("non-empty %s left after failure", p.OutputFile())
				}
			}
			if strings.Contains(out, "root:") {
				t.Errorf("output leaks a local file: %s", out)
			}
		})
	}
}

// Custom presets that pass validation also run: each allowed option is
// used at least once here, so the allow-list only admits real ffmpeg options.
func TestCustomPresetsRunFFmpeg(t *testing.T) {
	input, err := os.ReadFile(sampleFile(t, "av"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load(`{
	  "mp3-mono": {"ext":"mp3","args":["-acodec","libmp3lame","-b:a","64k","-ac","1","-ar","22050","-af","aresample=22050,volume=0.8,highpass=f=100,lowpass=f=8000","-t","0.5"]},
	  "mp3-q":    {"ext":"mp3","args":["-codec:a","libmp3lame","-q:a","4.5","-compression_level","2"]},
	  "opus-voip":{"ext":"opus","args":["-c:a","libopus","-b:a","32k","-vbr","constrained","-application","voip","-filter:a","loudnorm"]},
	  "vorbis":   {"ext":"ogg","args":["-c:a","libvorbis","-q:a","3"]},
	  "flac":     {"ext":"flac","args":["-c:a","flac","-sample_fmt","s16","-compression_level","5"]},
	  "aac-adts": {"ext":"aac","args":["-c:a","aac","-b:a","128k","-ss","0.2"]},
	  "wav24":    {"ext":"wav","args":["-c:a","pcm_s24le","-af","dynaudnorm,afade=t=in:d=0.1"]},
	  "poster":   {"ext":"png","args":["-ss","0.5","-vf","scale=w=80:h=-2,setsar=1","-c:v","png","-pix_fmt","rgb24"]},
	  "jpg-crop": {"ext":"jpg","args":["-codec:v","mjpeg","-q:v","5","-filter:v","crop=100:100,hflip,format=yuvj420p"]},
	  "webp":     {"ext":"webp","args":["-vcodec","libwebp","-quality","70","-vf","fps=1,transpose=1"]}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mp3-mono", "mp3-q", "opus-voip", "vorbis", "flac", "aac-adts", "wav24", "poster", "jpg-crop", "webp"} {
		t.Run(name, func(t *testing.T) {
			p, ok := s.Get(name)
			if !ok {
				t.Fatalf("preset %s missing", name)
			}
			dir := workdir(t, input)
			if out, err := runIn(dir, p.Argv()); err != nil {
				t.Fatalf("ffmpeg failed: %v\n%s\nargv: %s", err, out, p.CommandLine())
			}
			got := probe(t, filepath.Join(dir, p.OutputFile()))
			wantType := "audio"
			if p.Kind == KindImage {
				wantType = "video"
			}
			if !strings.HasSuffix(got, ","+wantType) || strings.Contains(got, "\n") {
				t.Errorf("output streams = %q, want one %s stream", got, wantType)
			}
		})
	}
}
