package presets

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runTask runs a profile's task command line the way a node does
// (/bin/sh -c script in a working directory holding input.mp4) and returns
// the exit code, the combined output and the working directory.
func runTask(t *testing.T, p Profile, input []byte) (int, string, string) {
	t.Helper()
	cl := p.TaskCommandLine()
	script, ok := strings.CutPrefix(cl, "/bin/sh -c '")
	if !ok || !strings.HasSuffix(script, "'") || strings.Count(cl, "'") != 2 {
		t.Fatalf("%s: command line is not one single-quoted sh script: %s", p.Name, cl)
	}
	script = strings.TrimSuffix(script, "'")
	dir := workdir(t, input)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	exit := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		exit = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return exit, string(out), dir
}

func readResult(t *testing.T, dir string) Result {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ResultFile))
	if err != nil {
		t.Fatalf("no %s: %v", ResultFile, err)
	}
	r, err := ParseResult(b)
	if err != nil {
		t.Fatalf("parse %s: %v\n%s", ResultFile, err, b)
	}
	return r
}

// TestTaskCommandLineDamagedInput runs every one-output profile's task
// command line on a good input and on the same input cut short: the good
// one succeeds with a verified output; a damaged one exits 0 (so Batch does
// not run it again) with a "failed" result and leaves no output to upload.
func TestTaskCommandLineDamagedInput(t *testing.T) {
	good, err := os.ReadFile(sampleFile(t, "av"))
	if err != nil {
		t.Fatal(err)
	}
	fast, err := os.ReadFile(sampleFile(t, "faststart"))
	if err != nil {
		t.Fatal(err)
	}
	s := Default()
	for _, name := range []string{"mp3", "aac", "opus", "wav", "thumbnail"} {
		p, _ := s.Get(name)
		for _, tc := range []struct {
			name  string
			input []byte
			codes []string // "" = success
		}{
			{"good", good, nil},
			{"good-faststart", fast, nil},
			// moov at the end: the index is lost
			{"truncated-moov-lost", good[:len(good)/2], []string{"not_media"}},
			// moov first: ffmpeg exits 1, or 0 with errors logged, or
			// writes a short output that verification refuses
			{"truncated-faststart-50", fast[:len(fast)/2], []string{"decode_error", "verify_failed"}},
			{"truncated-faststart-90", fast[:len(fast)*9/10], []string{"decode_error", "verify_failed"}},
			{"not-media", []byte("this is not a video\n"), []string{"not_media"}},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				exit, out, dir := runTask(t, OneOutput(p), tc.input)
				if exit != 0 {
					t.Fatalf("exit %d, want 0 (a deterministic failure must not be retried)\n%s", exit, out)
				}
				r := readResult(t, dir)
				_, statErr := os.Stat(filepath.Join(dir, p.OutputFile()))
				if tc.codes == nil {
					if !r.OK || statErr != nil {
						t.Fatalf("result ok=%v code=%s output err=%v, want success\n%s", r.OK, r.Code, statErr, out)
					}
					return
				}
				if r.OK || !contains(tc.codes, r.Code) {
					t.Fatalf("result ok=%v code %q, want one of %v\n%s", r.OK, r.Code, tc.codes, out)
				}
				if statErr == nil {
					t.Errorf("a failed task left %s to upload", p.OutputFile())
				}
				if !strings.Contains(out, "ffpipe: "+r.Code) {
					t.Errorf("stderr does not explain the failure:\n%s", out)
				}
			})
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A failure that belongs to the node (ffmpeg missing from PATH) exits
// non-zero and writes no result, so Batch runs the task again.
func TestTaskCommandLineTransient(t *testing.T) {
	good, err := os.ReadFile(sampleFile(t, "av"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := Default().Get("mp3")
	probe, err := exec.LookPath("ffprobe")
	if err != nil {
		t.Skip(err)
	}
	all := []string{"ffprobe", "sh", "awk", "grep", "head", "cat", "cut", "tr", "rm", "mkdir", "base64", "gzip"}
	tests := []struct {
		name    string
		missing string // left out of PATH (ffmpeg always is)
		say     string
	}{
		{"no ffmpeg", "", "ffmpeg is missing on the node"},
		{"no base64 to unpack the script", "base64", "cannot unpack the task script"},
		{"no gzip to unpack the script", "gzip", "cannot unpack the task script"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := t.TempDir()
			for _, tool := range all {
				if tool == tt.missing {
					continue
				}
				path := probe
				if tool != "ffprobe" {
					if path, err = exec.LookPath(tool); err != nil {
						t.Skip(err)
					}
				}
				if err := os.Symlink(path, filepath.Join(bin, tool)); err != nil {
					t.Fatal(err)
				}
			}
			script := strings.TrimSuffix(strings.TrimPrefix(p.TaskCommandLine(), "/bin/sh -c '"), "'")
			dir := workdir(t, good)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
			cmd.Dir = dir
			cmd.Env = []string{"PATH=" + bin}
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 127 {
				t.Fatalf("exit: got %v, want 127\n%s", err, out)
			}
			if _, err := os.Stat(filepath.Join(dir, ResultFile)); err == nil {
				t.Errorf("a transient failure left %s", ResultFile)
			}
			if !strings.Contains(string(out), "transient") || !strings.Contains(string(out), tt.say) {
				t.Errorf("stderr does not say %q and transient:\n%s", tt.say, out)
			}
		})
	}
}

// TestTaskCommandLinePacked: every built-in profile's command line carries
// exactly its script (packed, behind the fixed loader), the script is the
// reviewed golden (testdata/script; -update rewrites it), and the command
// line is a fraction of the script's size.
func TestTaskCommandLinePacked(t *testing.T) {
	ps := DefaultProfiles()
	seen := map[string]string{} // command line → profile
	for _, n := range ps.Names() {
		t.Run(n, func(t *testing.T) {
			p, _ := ps.Get(n)
			cl := p.TaskCommandLine()
			if again := p.TaskCommandLine(); again != cl {
				t.Errorf("second TaskCommandLine (cached) differs from the first")
			}
			if other, dup := seen[cl]; dup {
				t.Errorf("same command line as profile %s", other)
			}
			seen[cl] = n
			got, ok := ScriptOf(cl)
			if !ok {
				t.Fatalf("ScriptOf(%q): not a packed command line", cl)
			}
			if got != p.Script() {
				t.Fatalf("unpacked script differs from Script():\ngot  %s\nwant %s", got, p.Script())
			}
			if strings.Count(cl, "'") != 2 || strings.ContainsAny(cl, "\n\x00`\\") {
				t.Errorf("command line %q is not one single-quoted loader", cl)
			}
			if len(cl) >= len(p.Script()) {
				t.Errorf("command line is %d bytes, the script %d: packing does not shorten it", len(cl), len(p.Script()))
			}
			golden := filepath.Join("testdata", "script", n+".sh")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(strings.ReplaceAll(got, "; ", ";\n")+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update): %v", err)
			}
			if got := strings.ReplaceAll(got, "; ", ";\n") + "\n"; got != string(want) {
				t.Errorf("script of %s differs from %s (one statement a line):\ngot\n%s\nwant\n%s", n, golden, got, want)
			}
		})
	}
	for _, bad := range []string{"", "/bin/sh -c 'echo hi'", "/bin/sh -c 'S=$(echo !!! | base64 -d | gzip -dc)'"} {
		if _, ok := ScriptOf(bad); ok {
			t.Errorf("ScriptOf(%q) = ok, want not a packed command line", bad)
		}
	}
}

// An input with a stream the codec whitelist refuses (MagicYUV video beside
// AAC) is still media: the audio profile converts its audio, and a video
// profile fails on its first run with a failed result, not as not_media.
func TestTaskCommandLineRefusedStream(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	out, err := runIn(dir, []string{"ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc=duration=2:size=160x120:rate=10", "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
		"-c:v", "magicyuv", "-c:a", "aac", "-shortest", "-f", "mov", "magicyuv.mp4"})
	if err != nil {
		t.Skipf("this ffmpeg cannot write MagicYUV: %v %s", err, out)
	}
	input, err := os.ReadFile(filepath.Join(dir, "magicyuv.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	mp3, _ := DefaultProfiles().Get("mp3")
	exit, log, wd := runTask(t, mp3, input)
	if exit != 0 {
		t.Fatalf("mp3: exit %d\n%s", exit, log)
	}
	if r := readResult(t, wd); !r.OK || !r.Source.Audio || r.Source.Height != 120 {
		t.Errorf("mp3: result %+v, want ok with the source's audio and its 120-line video seen\n%s", r, log)
	}
	web, _ := DefaultProfiles().Get("web")
	exit, log, wd = runTask(t, web, input)
	if exit != 0 {
		t.Fatalf("web: exit %d (a refused codec is no reason to run again)\n%s", exit, log)
	}
	if r := readResult(t, wd); r.OK || r.Code == "not_media" {
		t.Errorf("web: result %+v, want a failure other than not_media\n%s", r, log)
	}
}

// BenchmarkTaskCommandLine: what Dispatch pays per task for the command
// line (packed once per script), against building the script alone and
// packing it.
func BenchmarkTaskCommandLine(b *testing.B) {
	p, _ := DefaultProfiles().Get("mp3")
	b.Run("TaskCommandLine", func(b *testing.B) {
		for b.Loop() {
			_ = p.TaskCommandLine()
		}
	})
	b.Run("Script", func(b *testing.B) {
		for b.Loop() {
			_ = p.Script()
		}
	})
	b.Run("PackScript", func(b *testing.B) {
		s := p.Script()
		for b.Loop() {
			_ = PackScript(s)
		}
	})
}
