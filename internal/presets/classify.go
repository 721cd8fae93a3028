package presets

import (
	"strings"

	"github.com/ffpipe/ffpipe/internal/failure"
)

// stderrSigns are what ffmpeg (the pinned mov/mp4 demuxer, -xerror) writes
// to stderr for each kind of bad input, checked in order.
var stderrSigns = []struct {
	reason failure.Reason
	subs   []string
}{
	// -map 0:a:0 of an audio preset found no audio stream.
	{failure.NoAudio, []string{"matches no streams"}},
	// The mov demuxer found no movie: not an MP4/MOV at all.
	{failure.NotMedia, []string{"moov atom not found", "Invalid data found when processing input"}},
	// A movie whose samples do not decode: truncated or corrupt.
	{failure.DecodeError, []string{"partial file", "corrupt input packet", "Error while decoding", "error while decoding", "Invalid NAL", "decode_slice"}},
}

// Classify explains a failed run of a preset's task command line from its
// exit code (nil when the command never ran) and the end of its stderr:
// decode_error for the wrapper's ExitDamagedInput, else what ffmpeg's
// stderr shows (no_audio, not_media, decode_error). It returns "" when
// neither says anything it knows: the caller then falls back on
// failure.TaskFailed.
func Classify(exitCode *int, stderr string) failure.Reason {
	if exitCode != nil && *exitCode == ExitDamagedInput {
		return failure.DecodeError
	}
	for _, s := range stderrSigns {
		for _, sub := range s.subs {
			if strings.Contains(stderr, sub) {
				return s.reason
			}
		}
	}
	return ""
}
