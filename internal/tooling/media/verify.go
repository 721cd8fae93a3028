package media

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// DefaultTolerance is the ±0.1 s audio duration tolerance of the test plan
// (docs/reliability.md#invariants, "output validity").
const DefaultTolerance = 100 * time.Millisecond

// ExpectedAudioDuration returns the decoded duration of an input's first
// audio stream (DecodedAudioDuration): the number a ledger stores as
// expectedAudioDuration and later passes to VerifyAudio.
func ExpectedAudioDuration(ctx context.Context, input string) (time.Duration, error) {
	d, err := DecodedAudioDuration(ctx, input)
	if err != nil {
		return 0, fmt.Errorf("expected audio duration: %w", err)
	}
	return d, nil
}

// DecodedAudioDuration decodes the first audio stream of path and returns
// samples ÷ sample rate: what a player actually plays, independent of
// container metadata and encoder padding. Decoding is cheap for audio
// (20 min of 8 kHz AAC in well under a second).
func DecodedAudioDuration(ctx context.Context, path string) (time.Duration, error) {
	info, err := Probe(ctx, path)
	if err != nil {
		return 0, err
	}
	as := info.AudioStreams()
	if len(as) == 0 {
		return 0, fmt.Errorf("decode audio of %s: %w: no audio stream (%s)", path, ErrVerify, describe(info))
	}
	rate := as[0].SampleRate
	if rate <= 0 {
		return 0, fmt.Errorf("decode audio of %s: %w: unknown sample rate", path, ErrVerify)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, fmt.Errorf("decode audio of %s: %w", path, err)
	}
	cmd := command(ctx, ffmpegBin, "-hide_banner", "-nostdin", "-loglevel", "error",
		"-protocol_whitelist", "file", "-i", abs, "-map", "0:a:0", "-vn", "-sn", "-dn",
		"-ac", "1", "-c:a", "pcm_s16le", "-f", "s16le", "pipe:1")
	var n countWriter
	tail := &tailWriter{max: stderrTail}
	cmd.Stdout, cmd.Stderr = &n, tail
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("decode audio of %s: %w", path, ctx.Err())
		}
		return 0, fmt.Errorf("decode audio of %s: %w: %w: %s", path, ErrVerify, err, tail.String())
	}
	samples := int64(n) / 2
	return time.Duration(samples * int64(time.Second) / int64(rate)), nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// VerifyAudio checks a transcoded audio file: ffprobe reads it, it holds
// exactly one stream, that stream is audio with codec wantCodec (case
// insensitive, e.g. "mp3"), and, when wantDuration > 0, its decoded
// duration (DecodedAudioDuration) is within tol of wantDuration. tol <= 0
// means DefaultTolerance. Mismatches wrap ErrVerify.
//
// Pass the input's ExpectedAudioDuration as wantDuration: both sides are
// then measured the same way. Metadata is not good enough. An MP4's
// container duration is the longest stream, often the video; and ffprobe
// reports an MP3 stream longer than its source by LAME's encoder delay
// (1,105 samples, shown as a start time) plus end padding to a whole frame.
// Measured with ffmpeg 5.1: a 48 kHz source gives +0.044 s raw, +0.021 s
// after subtracting the start time; an 8 kHz source (576-sample frames)
// gives +0.264 s raw and +0.126 s after the start time, which would fail
// ±0.1 s for a correct output. Decoded, source and MP3 agree to the sample
// at both rates, so ±0.1 s still catches a wrong track or a cut output.
func VerifyAudio(ctx context.Context, path, wantCodec string, wantDuration, tol time.Duration) error {
	if tol <= 0 {
		tol = DefaultTolerance
	}
	info, err := Probe(ctx, path)
	if err != nil {
		return fmt.Errorf("verify audio: %w: %w", ErrVerify, err)
	}
	if len(info.Streams) != 1 {
		return fmt.Errorf("verify audio %s: %w: got %d streams (%s), want exactly 1 audio stream",
			path, ErrVerify, len(info.Streams), describe(info))
	}
	s := info.Streams[0]
	if s.CodecType != "audio" {
		return fmt.Errorf("verify audio %s: %w: got a %s stream, want audio", path, ErrVerify, s.CodecType)
	}
	if !strings.EqualFold(s.CodecName, wantCodec) {
		return fmt.Errorf("verify audio %s: %w: got codec %q, want %q", path, ErrVerify, s.CodecName, wantCodec)
	}
	if s.Channels <= 0 || s.SampleRate <= 0 {
		return fmt.Errorf("verify audio %s: %w: got %d channels at %d Hz", path, ErrVerify, s.Channels, s.SampleRate)
	}
	if wantDuration > 0 {
		got, err := DecodedAudioDuration(ctx, path)
		if err != nil {
			return fmt.Errorf("verify audio: %w", err)
		}
		if diff := (got - wantDuration).Abs(); diff > tol {
			return fmt.Errorf("verify audio %s: %w: got duration %v, want %v ± %v (off by %v)",
				path, ErrVerify, got, wantDuration, tol, diff)
		}
	}
	return nil
}

// VerifyImage checks a still image (a thumbnail): ffprobe reads it, it holds
// exactly one stream, a video stream with codec wantCodec ("mjpeg" for
// JPEG, "png", "webp"; empty accepts any), positive dimensions, and
// wantWidth/wantHeight when they are > 0 (0 accepts any, as for a thumbnail
// scaled with -1 on one side). Mismatches wrap ErrVerify.
func VerifyImage(ctx context.Context, path, wantCodec string, wantWidth, wantHeight int) error {
	info, err := Probe(ctx, path)
	if err != nil {
		return fmt.Errorf("verify image: %w: %w", ErrVerify, err)
	}
	if len(info.Streams) != 1 || info.Streams[0].CodecType != "video" {
		return fmt.Errorf("verify image %s: %w: got streams (%s), want exactly 1 video stream",
			path, ErrVerify, describe(info))
	}
	s := info.Streams[0]
	if wantCodec != "" && !strings.EqualFold(s.CodecName, wantCodec) {
		return fmt.Errorf("verify image %s: %w: got codec %q, want %q", path, ErrVerify, s.CodecName, wantCodec)
	}
	if s.Width <= 0 || s.Height <= 0 {
		return fmt.Errorf("verify image %s: %w: got size %dx%d", path, ErrVerify, s.Width, s.Height)
	}
	if (wantWidth > 0 && s.Width != wantWidth) || (wantHeight > 0 && s.Height != wantHeight) {
		return fmt.Errorf("verify image %s: %w: got size %dx%d, want %dx%d (0 = any)",
			path, ErrVerify, s.Width, s.Height, wantWidth, wantHeight)
	}
	return nil
}

// describe lists streams as "0:video/h264 1:audio/aac" for error messages.
func describe(info Info) string {
	if len(info.Streams) == 0 {
		return "none"
	}
	parts := make([]string, len(info.Streams))
	for i, s := range info.Streams {
		parts[i] = fmt.Sprintf("%d:%s/%s", s.Index, s.CodecType, s.CodecName)
	}
	return strings.Join(parts, " ")
}
