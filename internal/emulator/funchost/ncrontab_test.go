package funchost

import (
	"errors"
	"testing"
	"time"
)

func TestScheduleNext(t *testing.T) {
	base := time.Date(2026, 3, 1, 9, 12, 33, 500, time.UTC) // a Sunday
	tests := []struct {
		expr string
		from time.Time
		want []string
	}{
		{"*/10 * * * * *", base, []string{"2026-03-01T09:12:40Z", "2026-03-01T09:12:50Z", "2026-03-01T09:13:00Z"}},
		{"0 0 2 * * *", base, []string{"2026-03-02T02:00:00Z", "2026-03-03T02:00:00Z"}},
		{"0 */5 * * * *", base, []string{"2026-03-01T09:15:00Z", "2026-03-01T09:20:00Z"}},
		{"0 30 9 * * MON-FRI", base, []string{"2026-03-02T09:30:00Z", "2026-03-03T09:30:00Z"}},
		{"0 0 12 * * sat,sun", base, []string{"2026-03-01T12:00:00Z", "2026-03-07T12:00:00Z"}},
		{"0 0 0 1 JAN *", base, []string{"2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"}},
		{"5-7 0 0 * * *", base, []string{"2026-03-02T00:00:05Z", "2026-03-02T00:00:06Z", "2026-03-02T00:00:07Z", "2026-03-03T00:00:05Z"}},
		{"0 0 10-20/5 * * *", base, []string{"2026-03-01T10:00:00Z", "2026-03-01T15:00:00Z", "2026-03-01T20:00:00Z", "2026-03-02T10:00:00Z"}},
		{"0 0 0 29 2 *", base, []string{"2028-02-29T00:00:00Z"}},
		{"0 0 0 1 * 1", base, []string{"2026-06-01T00:00:00Z"}}, // both day and weekday must match
		{"30 1,2 * * * *", base, []string{"2026-03-01T10:01:30Z", "2026-03-01T10:02:30Z", "2026-03-01T11:01:30Z"}},
		{"10/20 * * * * *", base, []string{"2026-03-01T09:12:50Z", "2026-03-01T09:13:10Z", "2026-03-01T09:13:30Z"}},
		{"0 0 * * *", base, []string{"2026-03-02T00:00:00Z"}}, // five fields: minute hour day month weekday, second 0
		{"0 0 0 * * 0", base, []string{"2026-03-08T00:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			s, err := ParseSchedule(tt.expr)
			if err != nil {
				t.Fatalf("ParseSchedule(%q): %v", tt.expr, err)
			}
			at := tt.from
			for i, w := range tt.want {
				at = s.Next(at)
				if got := at.Format(time.RFC3339); got != w {
					t.Fatalf("occurrence %d: got %s, want %s", i, got, w)
				}
			}
		})
	}
}

func TestScheduleNever(t *testing.T) {
	s, err := ParseSchedule("0 0 0 31 2 *")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Next(time.Now()); !got.IsZero() {
		t.Fatalf("got %v, want zero time", got)
	}
}

func TestParseScheduleErrors(t *testing.T) {
	for _, expr := range []string{
		"", "* * * *", "* * * * * * *", "60 * * * * *", "* 60 * * * *", "* * 24 * * *",
		"* * * 0 * *", "* * * 32 * *", "* * * * 13 *", "* * * * * 7", "*/0 * * * * *",
		"5-1 * * * * *", "a * * * * *", "1,,2 * * * * *", "* * * * FOO *", "-1 * * * * *", "+1 * * * * *",
		"*/x * * * * *",
	} {
		if _, err := ParseSchedule(expr); !errors.Is(err, ErrSchedule) {
			t.Errorf("ParseSchedule(%q): got %v, want ErrSchedule", expr, err)
		}
	}
}

func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"*/10 * * * * *", "0 30 9 * * MON-FRI", "0 0 0 1 JAN *", "10/20 1-5,7 * * * *", "0 0 * * *", "1/99999999999999999 * * * * *"} {
		f.Add(s)
	}
	from := time.Date(2026, 3, 1, 9, 12, 33, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := ParseSchedule(expr)
		if err != nil {
			if !errors.Is(err, ErrSchedule) {
				t.Fatalf("error %v does not wrap ErrSchedule", err)
			}
			return
		}
		next := s.Next(from)
		if next.IsZero() {
			return
		}
		if !next.After(from) {
			t.Fatalf("%q: Next(%v) = %v, not after", expr, from, next)
		}
		if next.Nanosecond() != 0 {
			t.Fatalf("%q: Next has sub-second part %v", expr, next)
		}
		// Next is the first occurrence: the second before it must not match
		// unless it is from itself.
		if again := s.Next(next.Add(-time.Second)); !again.Equal(next) && next.Add(-time.Second).After(from) {
			t.Fatalf("%q: Next(%v) = %v, want %v", expr, next.Add(-time.Second), again, next)
		}
	})
}
