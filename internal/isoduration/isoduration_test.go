package isoduration

import (
	"errors"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"PT1M", time.Minute, false},
		{"PT20S", 20 * time.Second, false},
		{"PT1H", time.Hour, false},
		{"P1D", 24 * time.Hour, false},
		{"P1DT2H3M4S", 26*time.Hour + 3*time.Minute + 4*time.Second, false},
		{"P1Y", 365 * 24 * time.Hour, false},
		{"P1M", 30 * 24 * time.Hour, false},
		{"P2W", 14 * 24 * time.Hour, false},
		{"pt5m", 5 * time.Minute, false},
		{"PT0.5S", 500 * time.Millisecond, false},
		{"PT1,5S", 1500 * time.Millisecond, false},
		{"PT0S", 0, false},
		{" PT1M ", time.Minute, false},
		{"", 0, true},
		{"P", 0, true},
		{"PT", 0, true},
		{"1M", 0, true},
		{"PT1", 0, true},
		{"PTM", 0, true},
		{"PT1H1H", 0, true},
		{"PT1M1H", 0, true},
		{"P1H", 0, true},
		{"PT1D", 0, true},
		{"PT1.5M2S", 0, true},
		{"PT-1S", 0, true},
		{"PT.5S", 0, true},
		{"PT5.S", 0, true},
		{"P1DT", 0, true},
		{"PTT1S", 0, true},
		{"P99999999999Y", 0, true},
		{"PT1e3S", 0, true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("Parse(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "PT0S"},
		{time.Minute, "PT1M"},
		{20 * time.Second, "PT20S"},
		{25*time.Hour + time.Second, "P1DT1H1S"},
		{48 * time.Hour, "P2D"},
		{1500 * time.Millisecond, "PT1.5S"},
	}
	for _, tt := range tests {
		got := Format(tt.in)
		if got != tt.want {
			t.Errorf("Format(%v) = %q, want %q", tt.in, got, tt.want)
		}
		back, err := Parse(got)
		if err != nil || back != tt.in {
			t.Errorf("round trip of %v: %v, %v", tt.in, back, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"PT1M", "P1DT2H3M4S", "PT0.5S", "P", "PT", "P1Y2M3W4D", "PT1,5S", "P99999999999Y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("Parse(%q) = %v, negative", s, d)
		}
		// Whole-second values survive a round trip.
		if d%time.Second == 0 {
			back, err := Parse(Format(d))
			if err != nil || back != d {
				t.Fatalf("round trip of %q (%v): %v, %v", s, d, back, err)
			}
		}
	})
}

func TestTooLong(t *testing.T) {
	// .NET's TimeSpan.MaxValue, what Batch writes for "no limit".
	for _, s := range []string{"P10675199DT2H48M5.4775807S", "P99999999999Y", "P300Y"} {
		if _, err := Parse(s); !errors.Is(err, ErrTooLong) {
			t.Errorf("Parse(%q) error = %v, want ErrTooLong", s, err)
		}
	}
}

func TestFormatSeconds(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "PT0S"},
		{-time.Second, "PT0S"},
		{time.Millisecond, "PT1S"},
		{90 * time.Minute, "PT1H30M"},
		{45*time.Second + time.Nanosecond, "PT46S"},
		{7 * 24 * time.Hour, "P7D"},
	}
	for _, tt := range tests {
		if got := FormatSeconds(tt.in); got != tt.want {
			t.Errorf("FormatSeconds(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
