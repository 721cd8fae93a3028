package batch

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/isoduration"
)

// unlimitedDuration is how Batch writes "no limit" (TimeSpan.MaxValue).
const unlimitedDuration = "P10675199DT2H48M5.4775807S"

// parseDuration parses an ISO-8601 duration. Values of 100 years or more,
// and those beyond time.Duration, mean "unlimited" (0, true).
func parseDuration(s string) (d time.Duration, unlimited bool, err error) {
	d, err = isoduration.Parse(s)
	switch {
	case errors.Is(err, isoduration.ErrTooLong) || err == nil && d >= 100*365*24*time.Hour:
		return 0, true, nil
	case err != nil:
		return 0, false, fmt.Errorf("%q is not an ISO-8601 duration such as PT30M", s)
	}
	return d, false, nil
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
