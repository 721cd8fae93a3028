package presets

import (
	"strconv"
	"strings"
)

// ExitDamagedInput is the task's exit code when ffmpeg exited 0 but logged
// an error: the input is damaged (a truncated MP4 decodes to a short output
// and ffmpeg 5.1 still exits 0, even with -xerror). The task then fails and
// its output is never uploaded, so a short output can never be taken for a
// good one and the input is kept.
const ExitDamagedInput = 65

// errLog is where the task wrapper keeps ffmpeg's own stderr.
const errLog = "ffmpeg.log"

// benignStderr are the error-level lines a clean run prints: the refusal of
// the decoder for the stream the preset does not use (the codec whitelist at
// work) and ffmpeg's repeat counter.
var benignStderr = []string{"not on whitelist", "Last message repeated"}

// TaskCommandLine is the Batch task command line: the fixed ffmpeg argv in a
// fixed /bin/sh -c wrapper (Batch's documented way to get a shell) that
// fails the task with ExitDamagedInput, and removes the output, when ffmpeg
// logged anything but the benign lines. Like Argv, it holds no byte of any
// request: the script is a constant per preset. ffmpeg's stderr is copied
// to the task's stderr.txt, so Sweep's failure reason shows it.
func (p Preset) TaskCommandLine() string {
	var grep strings.Builder
	grep.WriteString("grep -v")
	for _, s := range benignStderr {
		grep.WriteString(` -e "` + s + `"`)
	}
	script := p.CommandLine() + " 2>" + errLog + "; rc=$?; cat " + errLog + " >&2; " +
		"if [ $rc -ne 0 ]; then rm -f " + p.OutputFile() + "; exit $rc; fi; " +
		"if " + grep.String() + " " + errLog + ` | grep -q "[^[:space:]]"; then ` +
		"rm -f " + p.OutputFile() + `; echo "ffpipe: ffmpeg reported errors (damaged input); output discarded" >&2; ` +
		"exit " + strconv.Itoa(ExitDamagedInput) + "; fi"
	// Argument validation rules out quotes, so single-quoting is exact.
	return "/bin/sh -c '" + script + "'"
}
