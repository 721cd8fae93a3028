package media

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// VideoTolerance is how far a video output's or HLS rung's duration may be
// from the source's: a frame at 10 fps plus the last partial segment's
// rounding.
const VideoTolerance = 500 * time.Millisecond

// VerifyVideo checks a video output (an MP4, or an HLS rung's playlist
// with its segments beside it): every frame decodes with no error, it has
// a video stream of codec wantCodec ("" = any) and height wantHeight (0 =
// any), an audio stream when wantAudio, and its container duration is
// within VideoTolerance of wantDuration (0 = not checked). Mismatches wrap
// ErrVerify.
func VerifyVideo(ctx context.Context, path, wantCodec string, wantHeight int, wantAudio bool, wantDuration time.Duration) error {
	info, err := Probe(ctx, path)
	if err != nil {
		return fmt.Errorf("verify video: %w: %w", ErrVerify, err)
	}
	vs := info.VideoStreams()
	if len(vs) == 0 {
		return fmt.Errorf("verify video %s: %w: no video stream (%s)", path, ErrVerify, describe(info))
	}
	if wantCodec != "" && !strings.EqualFold(vs[0].CodecName, wantCodec) {
		return fmt.Errorf("verify video %s: %w: got codec %q, want %q", path, ErrVerify, vs[0].CodecName, wantCodec)
	}
	if wantHeight > 0 && vs[0].Height != wantHeight {
		return fmt.Errorf("verify video %s: %w: got %d lines, want %d", path, ErrVerify, vs[0].Height, wantHeight)
	}
	if wantAudio && len(info.AudioStreams()) == 0 {
		return fmt.Errorf("verify video %s: %w: no audio stream (%s)", path, ErrVerify, describe(info))
	}
	if wantDuration > 0 {
		if diff := (info.Duration - wantDuration).Abs(); diff > VideoTolerance {
			return fmt.Errorf("verify video %s: %w: got duration %v, want %v ± %v", path, ErrVerify, info.Duration, wantDuration, VideoTolerance)
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("verify video %s: %w", path, err)
	}
	cmd := command(ctx, ffmpegBin, "-hide_banner", "-nostdin", "-loglevel", "error", "-xerror",
		"-protocol_whitelist", "file", "-i", abs, "-f", "null", "-")
	tail := &tailWriter{max: stderrTail}
	cmd.Stderr = tail
	if err := cmd.Run(); err != nil || tail.String() != "" {
		return fmt.Errorf("verify video %s: %w: does not decode: %v %s", path, ErrVerify, err, tail.String())
	}
	return nil
}

// HLSRungs reads a local master playlist and returns the variant playlists
// it lists, as paths relative to its folder, in order; every one must
// exist. A rung playlist must end with #EXT-X-ENDLIST and every segment it
// lists must exist and not be empty.
func HLSRungs(master string) ([]string, error) {
	b, err := os.ReadFile(master)
	if err != nil {
		return nil, fmt.Errorf("hls: %w", err)
	}
	dir := filepath.Dir(master)
	var rungs []string
	for _, l := range playlistURIs(b) {
		if err := checkPlaylist(filepath.Join(dir, filepath.FromSlash(l))); err != nil {
			return nil, err
		}
		rungs = append(rungs, l)
	}
	if len(rungs) == 0 {
		return nil, fmt.Errorf("hls %s: %w: the master lists no variant", master, ErrVerify)
	}
	return rungs, nil
}

func checkPlaylist(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("hls: %w: %w", ErrVerify, err)
	}
	if !strings.Contains(string(b), "#EXT-X-ENDLIST") {
		return fmt.Errorf("hls %s: %w: no #EXT-X-ENDLIST", path, ErrVerify)
	}
	for _, l := range playlistURIs(b) {
		fi, err := os.Stat(filepath.Join(filepath.Dir(path), filepath.FromSlash(l)))
		if err != nil || fi.Size() == 0 {
			return fmt.Errorf("hls %s: %w: segment %s missing or empty", path, ErrVerify, l)
		}
	}
	return nil
}

// playlistURIs are a playlist's URI lines: every line that is neither
// blank nor a tag or comment (#).
func playlistURIs(b []byte) []string {
	var uris []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			uris = append(uris, l)
		}
	}
	return uris
}
