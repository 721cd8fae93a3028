package funchost

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed NCRONTAB expression as the Functions timer trigger
// accepts it: six fields "{second} {minute} {hour} {day} {month} {day-of-week}"
// (a five-field expression has an implied second 0). Fields take *, numbers,
// ranges a-b, lists a,b, steps */n and a-b/n, and the names JAN–DEC and
// SUN–SAT. Day of month and day of week must both match (NCrontab semantics,
// unlike Vixie cron's "either"). Times are UTC.
type Schedule struct {
	expr                          string
	sec, min, hour, dom, mon, dow uint64 // bit i set = value i allowed
}

type cronField struct {
	name     string
	min, max int
	names    []string // index = value - min for named fields
}

var cronFields = [6]cronField{
	{name: "second", min: 0, max: 59},
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}},
	{name: "day-of-week", min: 0, max: 6, names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}},
}

// ParseSchedule parses an NCRONTAB expression.
func ParseSchedule(expr string) (*Schedule, error) {
	fields := strings.Fields(expr)
	switch len(fields) {
	case 6:
	case 5:
		fields = append([]string{"0"}, fields...)
	default:
		return nil, fmt.Errorf("parse schedule %q: want 6 fields, got %d: %w", expr, len(fields), ErrSchedule)
	}
	var bits [6]uint64
	for i, f := range fields {
		b, err := parseCronField(f, cronFields[i])
		if err != nil {
			return nil, fmt.Errorf("parse schedule %q: %w", expr, err)
		}
		bits[i] = b
	}
	return &Schedule{expr: expr, sec: bits[0], min: bits[1], hour: bits[2], dom: bits[3], mon: bits[4], dow: bits[5]}, nil
}

// String returns the expression the schedule was parsed from.
func (s *Schedule) String() string { return s.expr }

func parseCronField(f string, cf cronField) (uint64, error) {
	var bits uint64
	for _, part := range strings.Split(f, ",") {
		if part == "" {
			return 0, fmt.Errorf("%s field %q: empty list item: %w", cf.name, f, ErrSchedule)
		}
		rng, stepStr, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepStr)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("%s field %q: bad step: %w", cf.name, part, ErrSchedule)
			}
			// A step wider than the field selects only the start; cap it so
			// the loop below cannot overflow.
			step = min(n, 64)
		}
		lo, hi := cf.min, cf.max
		switch {
		case rng == "*":
		default:
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = cronValue(a, cf); err != nil {
				return 0, err
			}
			hi = lo
			if isRange {
				if hi, err = cronValue(b, cf); err != nil {
					return 0, err
				}
				if hi < lo {
					return 0, fmt.Errorf("%s field %q: range end before start: %w", cf.name, part, ErrSchedule)
				}
			} else if hasStep {
				// "a/n" means a through max every n.
				hi = cf.max
			}
		}
		for v := lo; v <= hi; v += step {
			bits |= 1 << uint(v)
		}
	}
	return bits, nil
}

func cronValue(s string, cf cronField) (int, error) {
	for i, n := range cf.names {
		if strings.EqualFold(s, n) {
			return cf.min + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < cf.min || v > cf.max || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("%s field: value %q out of range %d-%d: %w", cf.name, s, cf.min, cf.max, ErrSchedule)
	}
	return v, nil
}

func has(bits uint64, v int) bool { return bits&(1<<uint(v)) != 0 }

// Next returns the first occurrence strictly after t (in UTC), or the zero
// time when there is none within five years (e.g. "0 0 0 31 2 *").
func (s *Schedule) Next(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Second).Add(time.Second)
	limit := t.AddDate(5, 0, 0)
	for t.Before(limit) {
		if !has(s.mon, int(t.Month())) {
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if !has(s.dom, t.Day()) || !has(s.dow, int(t.Weekday())) {
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if !has(s.hour, t.Hour()) {
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, time.UTC)
			continue
		}
		if !has(s.min, t.Minute()) {
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute()+1, 0, 0, time.UTC)
			continue
		}
		if !has(s.sec, t.Second()) {
			t = t.Add(time.Second)
			continue
		}
		return t
	}
	return time.Time{}
}
