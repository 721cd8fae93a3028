package batch

import (
	"testing"
	"time"
)

func TestParseProgress(t *testing.T) {
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	now := start.Add(30 * time.Second)
	block := func(us, state string) string {
		return "frame=0\nout_time_us=" + us + "\nout_time_ms=" + us + "\nout_time=00:00:30.000000\nspeed=2x\nprogress=" + state + "\n"
	}
	for _, tc := range []struct {
		name        string
		in          string
		dur         float64
		wantPercent float64
		wantETA     time.Duration
		wantEnded   bool
	}{
		{"a quarter in 30 s: 90 s left", block("1000000", "continue") + block("30000000", "continue"), 120, 25, 90 * time.Second, false},
		{"cut at the start", "00000\nprogress=continue\n" + block("60000000", "continue"), 120, 50, 30 * time.Second, false},
		{"ended", block("120000000", "end"), 120, 100, 0, true},
		{"duration unknown", block("30000000", "continue"), 0, 0, 0, false},
		{"past the probed duration", block("130000000", "continue"), 120, 100, 0, false},
		{"empty", "", 120, 0, 0, false},
		{"negative time (ffmpeg before the first frame)", "out_time_us=-9223372036854775807\nprogress=continue\n", 120, 0, 0, false},
	} {
		got := ParseProgress([]byte(tc.in), tc.dur, start, now)
		if got.Percent != tc.wantPercent || got.ETA != tc.wantETA || got.Ended != tc.wantEnded {
			t.Errorf("%s: got %.1f%% ETA %s ended %v, want %.1f%% ETA %s ended %v", tc.name, got.Percent, got.ETA, got.Ended, tc.wantPercent, tc.wantETA, tc.wantEnded)
		}
	}
}

func FuzzParseProgress(f *testing.F) {
	f.Add([]byte("out_time_us=1000\nprogress=continue\n"), 10.0)
	f.Add([]byte("progress=end\n"), 0.0)
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte, dur float64) {
		p := ParseProgress(b, dur, start, start.Add(time.Minute))
		if p.Percent < 0 || p.Percent > 100 || p.ETA < 0 {
			t.Fatalf("out of range: %+v", p)
		}
	})
}
