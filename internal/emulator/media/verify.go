package media

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// DefaultTolerance is the ±0.1 s audio duration tolerance of the test plan
// (reliability-security.md §6.1, "output validity").
const DefaultTolerance = 100 * time.Millisecond

// ExpectedAudioDuration probes an input and returns the playable duration of
// its first audio stream: the number a ledger stores as
// expectedAudioDuration and later passes to VerifyAudio.
func ExpectedAudioDuration(ctx context.Context, input string) (time.Duration, error) {
	info, err := Probe(ctx, input)
	if err != nil {
		return 0, fmt.Errorf("expected audio duration: %w", err)
	}
	d, ok := info.AudioDuration()
	if !ok {
		return 0, fmt.Errorf("expected audio duration of %s: %w: no audio stream", input, ErrVerify)
	}
	return d, nil
}

// VerifyAudio checks a transcoded audio file: ffprobe reads it, it holds
// exactly one stream, that stream is audio with codec wantCodec (case
// insensitive, e.g. "mp3"), and, when wantDuration > 0, its playable
// duration (Info.AudioDuration) is within tol of wantDuration. tol <= 0
// means DefaultTolerance. Mismatches wrap ErrVerify.
//
// Compare against the input's audio stream (ExpectedAudioDuration), not the
// container: an MP4's container duration is the longest stream, often the
// video. MP3 encoder padding: for the default 44.1/48 kHz tone clips,
// ffprobe reports the MP3 stream 0.03–0.05 s longer than the AAC source
// (LAME's 1,105-sample delay plus padding to a whole 1,152-sample frame) and
// a start time of ~0.023 s (the delay). Subtracting the start time, as
// AudioDuration does, brings the difference to ≤ 0.025 s, so ±0.1 s holds
// with margin while a wrong track (half length) or a cut output still fails.
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
		got, _ := info.AudioDuration()
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
