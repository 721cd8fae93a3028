package media

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Program names, resolved through PATH. Tests and callers may rely on the
// Debian ffmpeg package; nothing here downloads a binary.
const (
	ffmpegBin  = "ffmpeg"
	ffprobeBin = "ffprobe"
)

// stderrTail is how much of a failed child's stderr goes into an error.
const stderrTail = 600

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	max int
	buf []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	return len(p), nil
}

func (w *tailWriter) String() string { return strings.TrimSpace(string(w.buf)) }

// command builds an exec.Cmd that dies with ctx and never hangs on pipes.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// runFFmpeg runs ffmpeg with args (no program name) and returns a wrapped
// error carrying the tail of stderr on failure.
func runFFmpeg(ctx context.Context, args []string) error {
	cmd := command(ctx, ffmpegBin, args...)
	tail := &tailWriter{max: stderrTail}
	cmd.Stderr = tail
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("run ffmpeg: %w", ctx.Err())
		}
		return fmt.Errorf("run ffmpeg: %w: %s", err, tail.String())
	}
	return nil
}

// output runs a program and returns stdout; stderr's tail goes into errors.
func output(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := command(ctx, name, args...)
	var out bytes.Buffer
	tail := &tailWriter{max: stderrTail}
	cmd.Stdout = &out
	cmd.Stderr = tail
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("run %s: %w", name, ctx.Err())
		}
		return nil, fmt.Errorf("run %s: %w: %s", name, err, tail.String())
	}
	return out.Bytes(), nil
}
