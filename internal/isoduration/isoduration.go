// Package isoduration owns ISO-8601 durations ("PT30M", "P1DT2H"), the form
// Azure's REST APIs and configuration files use for time spans: Batch's
// task constraints and pool settings, Service Bus's Config.json entity
// properties, and FFPIPE_* settings that accept them.
//
// It imports nothing of ffpipe, so the stand-ins may use it
// (docs/architecture.md).
package isoduration

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrTooLong: the duration does not fit a time.Duration (about 292
// years), like .NET's TimeSpan.MaxValue that Batch writes for "no limit".
var ErrTooLong = errors.New("duration too long")

// Parse parses P[nY][nM][nW][nD][T[nH][nM][nS]], e.g. "PT1M", "P1D",
// "PT1H30M". A year is 365 days and a month 30 days, as .NET's XmlConvert
// does. Leniency beyond the schemas: surrounding white space, lower-case
// letters, weeks, and a fraction (with "." or ",") on the last component
// ("PT0.5S"). Negative durations, empty durations ("P", "PT"), components
// out of order and anything else are errors; a value beyond time.Duration
// is ErrTooLong.
func Parse(s string) (time.Duration, error) {
	in := s
	s = strings.ToUpper(strings.TrimSpace(s))
	if len(s) < 2 || s[0] != 'P' {
		return 0, fmt.Errorf("parse duration %q: want ISO-8601 like PT1M", in)
	}
	s = s[1:]
	var total float64
	inTime := false
	seen := false
	// order enforces the component order: date units, then T, then time units.
	order := 0
	for len(s) > 0 {
		if s[0] == 'T' {
			if inTime {
				return 0, fmt.Errorf("parse duration %q: repeated T", in)
			}
			inTime = true
			s = s[1:]
			if len(s) == 0 {
				return 0, fmt.Errorf("parse duration %q: no time components after T", in)
			}
			order = 10
			continue
		}
		v, fraction, unit, rest, err := component(in, s)
		if err != nil {
			return 0, err
		}
		s = rest
		mult, rank, ok := unitOf(unit, inTime)
		if !ok {
			return 0, fmt.Errorf("parse duration %q: unexpected unit %q", in, unit)
		}
		if rank <= order {
			return 0, fmt.Errorf("parse duration %q: unit %q out of order", in, unit)
		}
		if fraction && len(s) > 0 {
			return 0, fmt.Errorf("parse duration %q: only the last component may have a fraction", in)
		}
		order = rank
		seen = true
		total += v * mult
		if total >= math.MaxInt64 {
			return 0, fmt.Errorf("parse duration %q: %w", in, ErrTooLong)
		}
	}
	if !seen {
		return 0, fmt.Errorf("parse duration %q: no components", in)
	}
	return time.Duration(math.Round(total)), nil
}

// component splits the component at the start of s (in is the whole
// input, for errors) into its number, whether that has a fraction, its
// unit letter, and the rest of s. ISO 8601 allows a comma as the decimal
// point.
func component(in, s string) (v float64, fraction bool, unit byte, rest string, err error) {
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.' || s[i] == ',') {
		i++
	}
	if i == 0 || i == len(s) {
		return 0, false, 0, "", fmt.Errorf("parse duration %q: want a number followed by a unit", in)
	}
	num := strings.ReplaceAll(s[:i], ",", ".")
	if num[0] == '.' || num[len(num)-1] == '.' {
		return 0, false, 0, "", fmt.Errorf("parse duration %q: bad number %q", in, s[:i])
	}
	v, err = strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) {
		return 0, false, 0, "", fmt.Errorf("parse duration %q: bad number %q", in, s[:i])
	}
	return v, strings.Contains(num, "."), s[i], s[i+1:], nil
}

// unitOf is the length of unit in nanoseconds and its rank in the
// component order; M is months before the T and minutes after it.
func unitOf(unit byte, inTime bool) (mult float64, rank int, ok bool) {
	switch {
	case !inTime && unit == 'Y':
		return 365 * 24 * float64(time.Hour), 1, true
	case !inTime && unit == 'M':
		return 30 * 24 * float64(time.Hour), 2, true
	case !inTime && unit == 'W':
		return 7 * 24 * float64(time.Hour), 3, true
	case !inTime && unit == 'D':
		return 24 * float64(time.Hour), 4, true
	case inTime && unit == 'H':
		return float64(time.Hour), 11, true
	case inTime && unit == 'M':
		return float64(time.Minute), 12, true
	case inTime && unit == 'S':
		return float64(time.Second), 13, true
	}
	return 0, 0, false
}

// Format writes d as an ISO-8601 duration ("PT1M", "P1DT2H", "PT1.5S"):
// days, hours, minutes and seconds, sub-second parts as fractional seconds,
// "PT0S" for zero or less. Parse(Format(d)) == d for d >= 0.
func Format(d time.Duration) string {
	if d <= 0 {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteByte('P')
	day := 24 * time.Hour
	if d >= day {
		fmt.Fprintf(&b, "%dD", d/day)
		d %= day
	}
	if d == 0 {
		return b.String()
	}
	b.WriteByte('T')
	if d >= time.Hour {
		fmt.Fprintf(&b, "%dH", d/time.Hour)
		d %= time.Hour
	}
	if d >= time.Minute {
		fmt.Fprintf(&b, "%dM", d/time.Minute)
		d %= time.Minute
	}
	if d > 0 {
		if d%time.Second == 0 {
			fmt.Fprintf(&b, "%dS", d/time.Second)
		} else {
			b.WriteString(strconv.FormatFloat(d.Seconds(), 'f', -1, 64))
			b.WriteByte('S')
		}
	}
	return b.String()
}

// FormatSeconds is Format of d rounded up to whole seconds, for APIs that
// keep whole seconds only.
func FormatSeconds(d time.Duration) string {
	if d <= 0 {
		return Format(0)
	}
	return Format((d + time.Second - 1) / time.Second * time.Second)
}
