//go:build unix

package media

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/presets"
)

// wrapperTimeout bounds one run of the task wrapper on a mutated 1 s clip;
// a clean run takes about 0.1 s.
const wrapperTimeout = 5 * time.Second

// The crasher testdata/fuzz/FuzzTaskWrapper/empty-output-mvhd-timescale-0
// (mvhd.timescale = 0) made the wrapper exit 0 with an output.mp3 holding
// no audio frame: ffmpeg 5.1 only warned "Output file is empty, nothing was
// encoded", below the argv's -loglevel error. Preset.Argv now has
// "-abort_on empty_output_stream", so ffmpeg exits 1 and no output is left.

// maxPatch caps the bytes one mutation overwrites, so executions stay fast.
const maxPatch = 4096

// FuzzTaskWrapper mutates a small valid MP4 (overwriting bytes at an
// offset, and optionally cutting it short) and runs the mp3 preset's real
// task command line on it, as a Batch node does: /bin/sh -c script in a
// working directory holding input.mp4. Whatever the bytes:
//   - the run ends well before wrapperTimeout (no hang);
//   - it exits 0 (whatever the bytes, the input is to blame: a damaged
//     input must not be retried by Batch) with a result file that parses;
//   - an "ok" result comes with a non-empty output.mp3 that ffprobe reads
//     as exactly one mp3 audio stream; a "failed" one leaves no output.mp3
//     (nothing that could be uploaded);
//   - ffmpeg does not die of a signal;
//   - nothing is written outside the working directory: the sandbox root
//     around it, HOME and TMPDIR stay empty, the working directory holds
//     only input.mp4, ffmpeg.log, result.txt and output.mp3, and input.mp4
//     is intact.
func FuzzTaskWrapper(f *testing.F) {
	for _, bin := range []string{ffmpegBin, ffprobeBin, "/bin/sh"} {
		if _, err := exec.LookPath(bin); err != nil {
			f.Skipf("%s not installed: %v", bin, err)
		}
	}
	p, ok := presets.Default().Get("mp3")
	if !ok {
		f.Fatal("no mp3 preset")
	}
	script, ok := strings.CutPrefix(p.TaskCommandLine(), "/bin/sh -c '")
	if !ok || !strings.HasSuffix(script, "'") {
		f.Fatalf("task command line is not a single-quoted sh script: %s", p.TaskCommandLine())
	}
	script = strings.TrimSuffix(script, "'")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spec := tiny(time.Second)
	spec.CacheDir = testCache
	path, err := Generate(ctx, f.TempDir(), spec)
	if err != nil {
		f.Fatal(err)
	}
	clip, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}

	f.Add(uint32(0), []byte(nil), uint32(0))                           // the valid clip
	f.Add(uint32(0), []byte(nil), uint32(len(clip)/2))                 // cut in half
	f.Add(uint32(0), []byte(nil), uint32(len(clip)-1))                 // last byte lost
	f.Add(uint32(0), []byte(nil), uint32(len(clip)/5))                 // cut in the media data: ffmpeg 5.1 exits 0, the wrapper reports decode_error
	f.Add(uint32(len(clip)/2), bytes.Repeat([]byte{0}, 64), uint32(0)) // zeroed media data
	f.Add(uint32(len(clip)/3), bytes.Repeat([]byte{0xff}, 16), uint32(0))
	// Box headers the demuxer trusts: box sizes, sample counts.
	for _, box := range []string{"moov", "mdat", "mdhd", "stts", "stsc", "stsz", "stco"} {
		i := bytes.Index(clip, []byte(box))
		if i < 4 {
			continue
		}
		if box == "moov" || box == "mdat" {
			f.Add(uint32(i-4), []byte{0x7f, 0xff, 0xff, 0xff}, uint32(0)) // huge box size
		} else {
			f.Add(uint32(i+12), []byte{0x7f, 0xff, 0xff, 0xff}, uint32(0)) // huge count or duration
		}
	}

	f.Fuzz(func(t *testing.T, offset uint32, patch []byte, cut uint32) {
		if len(patch) > maxPatch {
			patch = patch[:maxPatch]
		}
		input := slices.Clone(clip)
		if cut != 0 {
			input = input[:int(cut%uint32(len(input)))]
		}
		if len(input) > 0 {
			off := int(offset % uint32(len(input)))
			copy(input[off:], patch)
		}
		runWrapper(t, script, p.OutputFile(), input)
	})
}

func runWrapper(t *testing.T, script, outName string, input []byte) {
	root := t.TempDir()
	work, home, tmp := filepath.Join(root, "work"), filepath.Join(root, "home"), filepath.Join(root, "tmp")
	for _, d := range []string{work, home, tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(work, presets.InputFile), input, 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), wrapperTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
	cmd.Dir = work
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + tmp, "LC_ALL=C"}
	// Kill ffmpeg with its shell on timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("task wrapper still running after %v on a %d-byte input (hang)\n%s", time.Since(start).Round(time.Millisecond), len(input), stderr.Bytes())
	}
	exit := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		exit = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d-byte input: exit %d", len(input), exit)
	// sh reports a child killed by signal n as 128+n; the wrapper passes
	// that on as a transient failure.
	if exit > 128 {
		t.Fatalf("ffmpeg died of signal %d on a %d-byte input\n%s", exit-128, len(input), stderr.Bytes())
	}
	if exit != 0 {
		t.Fatalf("exit %d on a %d-byte input, want 0 with a result (a damaged input is not retried)\n%s", exit, len(input), stderr.Bytes())
	}
	resText, err := os.ReadFile(filepath.Join(work, presets.ResultFile))
	if err != nil {
		t.Fatalf("no %s: %v\n%s", presets.ResultFile, err, stderr.Bytes())
	}
	res, err := presets.ParseResult(resText)
	if err != nil {
		t.Fatalf("%s: %v\n%s", presets.ResultFile, err, resText)
	}

	out := filepath.Join(work, outName)
	st, statErr := os.Stat(out)
	switch {
	case !res.OK && statErr == nil:
		t.Fatalf("failed %s left %s behind (%d bytes)\n%s", res.Code, outName, st.Size(), stderr.Bytes())
	case !res.OK && !errors.Is(statErr, os.ErrNotExist):
		t.Fatal(statErr)
	case res.OK && statErr != nil:
		t.Fatalf("ok without %s: %v\n%s", outName, statErr, stderr.Bytes())
	case res.OK && st.Size() == 0:
		t.Fatalf("ok with an empty %s\n%s", outName, stderr.Bytes())
	case res.OK:
		pctx, pcancel := context.WithTimeout(context.Background(), wrapperTimeout)
		defer pcancel()
		if err := VerifyAudio(pctx, out, "mp3", 0, 0); err != nil {
			t.Fatalf("exit 0 with an unreadable %s: %v\n%s", outName, err, stderr.Bytes())
		}
	}

	// Nothing outside the working directory, and nothing unexpected in it.
	if got := dirNames(t, root); !slices.Equal(got, []string{"home", "tmp", "work"}) {
		t.Errorf("sandbox root holds %v, want [home tmp work]", got)
	}
	for _, d := range []string{home, tmp} {
		if got := dirNames(t, d); len(got) != 0 {
			t.Errorf("%s holds %v, want nothing", filepath.Base(d), got)
		}
	}
	for _, name := range dirNames(t, work) {
		// ffmpeg's -progress file and the probed duration stay for Status
		// to read through the task-file API while the task runs.
		if name != presets.InputFile && name != "ffmpeg.log" && name != presets.ResultFile && name != outName &&
			name != presets.ProgressFile && name != presets.DurationFile {
			t.Errorf("working directory holds unexpected %q", name)
		}
	}
	if got, err := os.ReadFile(filepath.Join(work, presets.InputFile)); err != nil || !bytes.Equal(got, input) {
		t.Errorf("input.mp4 changed or gone (%v)", err)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
