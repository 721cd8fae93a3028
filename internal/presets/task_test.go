package presets

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTaskCommandLineDamagedInput runs every preset's task command line the
// way a node does (/bin/sh -c script) on a good input and on the same input
// cut in half: the good one succeeds with an output, the damaged one fails
// with ExitDamagedInput and leaves no output to upload.
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
	damaged := 0
	defer func() {
		// ffmpeg 5.1 exits 0 on a cut faststart MP4 for mp3 (measured):
		// the wrapper, not ffmpeg, must have caught some of these.
		if damaged == 0 {
			t.Errorf("no case failed through the damaged-input check; the wrapper is not exercised")
		}
	}()
	for _, name := range s.Names() {
		p, _ := s.Get(name)
		cl := p.TaskCommandLine()
		script, ok := strings.CutPrefix(cl, "/bin/sh -c '")
		if !ok || !strings.HasSuffix(script, "'") || strings.Count(cl, "'") != 2 {
			t.Fatalf("%s: command line is not one single-quoted sh script: %s", name, cl)
		}
		script = strings.TrimSuffix(script, "'")
		for _, tc := range []struct {
			name  string
			input []byte
			fail  bool
		}{
			{"good", good, false},
			{"good-faststart", fast, false},
			// moov at the end: ffmpeg itself fails
			{"truncated-moov-lost", good[:len(good)/2], true},
			// moov first: depending on the codec ffmpeg exits 0 on a short
			// output (then the wrapper fails it with ExitDamagedInput) or 1
			{"truncated-faststart-50", fast[:len(fast)/2], true},
			{"truncated-faststart-90", fast[:len(fast)*9/10], true},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				dir := workdir(t, tc.input)
				cmd := exec.Command("/bin/sh", "-c", script)
				cmd.Dir = dir
				out, err := cmd.CombinedOutput()
				exit := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					exit = ee.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				if failed := exit != 0; failed != tc.fail {
					t.Fatalf("exit: got %d, want failure %v\n%s", exit, tc.fail, out)
				}
				_, statErr := os.Stat(filepath.Join(dir, p.OutputFile()))
				if hasOutput := statErr == nil; hasOutput == tc.fail {
					t.Errorf("output present: got %v, want %v", hasOutput, !tc.fail)
				}
				if exit == ExitDamagedInput {
					damaged++
				}
				if exit == ExitDamagedInput && !strings.Contains(string(out), "damaged input") {
					t.Errorf("stderr does not explain the failure:\n%s", out)
				}
			})
		}
	}
}
