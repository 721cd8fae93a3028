package batch

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// unlimitedDuration is how Batch writes "no limit" (TimeSpan.MaxValue).
const unlimitedDuration = "P10675199DT2H48M5.4775807S"

var durationRE = regexp.MustCompile(`^P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)

// parseDuration parses an ISO-8601 duration (weeks, days, hours, minutes,
// seconds). Values of 100 years or more mean "unlimited" (0, true).
func parseDuration(s string) (d time.Duration, unlimited bool, err error) {
	m := durationRE.FindStringSubmatch(strings.ToUpper(strings.TrimSpace(s)))
	if m == nil || s == "P" || strings.HasSuffix(strings.ToUpper(s), "T") {
		return 0, false, fmt.Errorf("%q is not an ISO-8601 duration such as PT30M", s)
	}
	units := []float64{7 * 86400, 86400, 3600, 60, 1}
	var secs float64
	any := false
	for i, u := range units {
		if m[i+1] == "" {
			continue
		}
		any = true
		v, err := strconv.ParseFloat(m[i+1], 64)
		if err != nil {
			return 0, false, fmt.Errorf("%q is not an ISO-8601 duration", s)
		}
		secs += v * u
	}
	if !any {
		return 0, false, fmt.Errorf("%q is not an ISO-8601 duration such as PT30M", s)
	}
	if secs >= 100*365*86400 || math.IsInf(secs, 0) {
		return 0, true, nil
	}
	return time.Duration(secs * float64(time.Second)), false, nil
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func validID(id string) bool { return idRE.MatchString(id) }

// splitCommandLine turns a Batch command line into argv without a shell:
// whitespace separates arguments, single quotes are literal, double quotes
// group and allow \" \\ \$ \` escapes, a backslash outside quotes escapes the
// next character. No variable expansion, globbing or redirection: like a
// Batch node, a command that needs those must start /bin/sh -c "...".
func splitCommandLine(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		case c == '\'':
			inArg = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inArg = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
		case c == '\\':
			inArg = true
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
		default:
			inArg = true
			cur.WriteByte(c)
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	if len(args) == 0 {
		return nil, errors.New("empty command line")
	}
	return args, nil
}
