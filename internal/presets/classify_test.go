package presets

import (
	"testing"

	"github.com/ffpipe/ffpipe/internal/failure"
)

func TestClassify(t *testing.T) {
	exit := func(n int) *int { return &n }
	tests := []struct {
		name   string
		exit   *int
		stderr string
		want   failure.Reason
	}{
		{"wrapper's damaged input", exit(ExitDamagedInput), "", failure.DecodeError},
		{"wrapper's exit wins over stderr", exit(ExitDamagedInput), "moov atom not found", failure.DecodeError},
		{"no audio stream", exit(1), "Stream map '0:a:0' matches no streams.\nTo ignore this, add a trailing '?' to the map.", failure.NoAudio},
		{"no movie", exit(1), "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55] moov atom not found\ninput.mp4: Invalid data found when processing input", failure.NotMedia},
		{"not an mp4", exit(1), "input.mp4: Invalid data found when processing input", failure.NotMedia},
		{"truncated", exit(1), "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55] stream 1, offset 0x30: partial file", failure.DecodeError},
		{"decoder error", exit(69), "[aac @ 0x1] Error while decoding stream #0:1: Invalid data", failure.DecodeError},
		{"h264 slice", exit(1), "[h264 @ 0x1] Invalid NAL unit size", failure.DecodeError},
		{"unknown error", exit(1), "Conversion failed!", ""},
		{"never ran", nil, "", ""},
		{"success", exit(0), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.exit, tt.stderr); got != tt.want {
				t.Errorf("Classify = %q, want %q", got, tt.want)
			}
		})
	}
}
