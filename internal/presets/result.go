package presets

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MaxResultBytes caps a ResultFile: a line per output and rung.
const MaxResultBytes = 16 << 10

// Result is the task wrapper's verdict (ResultFile):
//
//	ffpipe-result 1
//	source audio=1 video=1 height=720 duration=8.000000
//	output 0 duration=8.045714
//	output 1 rung=360 duration=8.000000 height=360
//	output 2 skipped
//	ok
//
// or, for a deterministic failure, "ffpipe-result 1" and
// "failed <code> <message>".
type Result struct {
	OK bool
	// Code and Message explain a failure: a reason code (not_media,
	// no_audio, no_video, no_rung, decode_error, verify_failed) and a
	// sentence.
	Code, Message string
	Source        SourceFacts
	Outputs       []OutputResult
}

// SourceFacts are what the wrapper probed of the input.
type SourceFacts struct {
	Audio, Video bool
	Height       int
	Duration     float64 // seconds
}

// OutputResult is one verified output (one rung of an HLS output).
type OutputResult struct {
	Index    int // the output's index in the profile
	Rung     int // an HLS rung's height, 0 for other outputs
	Skipped  bool
	Duration float64 // seconds, 0 when not applicable (images)
	Height   int     // 0 for audio
}

// ErrBadResult: the text is not a result file of this version.
var ErrBadResult = errors.New("bad result file")

func badResult(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadResult, fmt.Sprintf(format, args...))
}

// ParseResult parses a ResultFile strictly: the header, then source and
// output lines, and a final "ok" or "failed" line; numbers must be finite
// and non-negative.
func ParseResult(b []byte) (Result, error) {
	var r Result
	if len(b) > MaxResultBytes {
		return r, badResult("%d bytes, at most %d", len(b), MaxResultBytes)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1024), MaxResultBytes)
	if !sc.Scan() || strings.TrimSpace(sc.Text()) != "ffpipe-result 1" {
		return r, badResult("no header")
	}
	ended := false
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if ended {
			if strings.TrimSpace(line) == "" {
				continue
			}
			return Result{}, badResult("text after the verdict")
		}
		word, rest, _ := strings.Cut(line, " ")
		var err error
		switch word {
		case "ok":
			if rest != "" {
				return Result{}, badResult("text after ok")
			}
			r.OK, ended = true, true
		case "failed":
			r.Code, r.Message, _ = strings.Cut(rest, " ")
			if !validCode(r.Code) {
				return Result{}, badResult("failure code %q", r.Code)
			}
			r.Message = cleanMessage(r.Message)
			ended = true
		case "source":
			err = parseSource(rest, &r.Source)
		case "output":
			var o OutputResult
			if o, err = parseOutput(rest); err == nil {
				r.Outputs = append(r.Outputs, o)
			}
		default:
			err = badResult("unknown line %q", cut(line, 40))
		}
		if err != nil {
			return Result{}, err
		}
	}
	if err := sc.Err(); err != nil {
		return Result{}, badResult("%v", err)
	}
	if !ended {
		return Result{}, badResult("no verdict")
	}
	return r, nil
}

func validCode(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c == '_') {
			return false
		}
	}
	return true
}

// cleanMessage keeps printable ASCII, at most 200 bytes.
func cleanMessage(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 200; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			b.WriteByte(c)
		}
	}
	return strings.TrimSpace(b.String())
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// fields parses "k=v k=v" into a map; bare words map to "".
func fields(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		if _, dup := m[k]; dup {
			return nil, badResult("field %q twice", cut(k, 20))
		}
		m[k] = v
	}
	return m, nil
}

// number parses a probed value: "" and "N/A" are 0.
func number(s string) (float64, error) {
	if s == "" || s == "N/A" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e9 {
		return 0, badResult("number %q", cut(s, 20))
	}
	return f, nil
}

func integer(s string) (int, error) {
	f, err := number(s)
	if err != nil || f != math.Trunc(f) || f > 1<<20 {
		return 0, badResult("integer %q", cut(s, 20))
	}
	return int(f), nil
}

func parseSource(s string, src *SourceFacts) error {
	m, err := fields(s)
	if err != nil {
		return err
	}
	for k, v := range m {
		switch k {
		case "audio", "video":
			if v != "0" && v != "1" {
				return badResult("source %s=%q", k, cut(v, 20))
			}
			if k == "audio" {
				src.Audio = v == "1"
			} else {
				src.Video = v == "1"
			}
		case "height":
			if src.Height, err = integer(v); err != nil {
				return err
			}
		case "duration":
			if src.Duration, err = number(v); err != nil {
				return err
			}
		default:
			return badResult("source field %q", cut(k, 20))
		}
	}
	return nil
}

func parseOutput(s string) (OutputResult, error) {
	idx, rest, _ := strings.Cut(s, " ")
	var o OutputResult
	i, err := strconv.Atoi(idx)
	if err != nil || i < 0 || i >= MaxOutputs || strconv.Itoa(i) != idx {
		return o, badResult("output index %q", cut(idx, 20))
	}
	o.Index = i
	m, err := fields(rest)
	if err != nil {
		return o, err
	}
	for k, v := range m {
		switch k {
		case "skipped":
			o.Skipped = true
		case "rung":
			o.Rung, err = integer(v)
		case "height":
			o.Height, err = integer(v)
		case "duration":
			o.Duration, err = number(v)
		default:
			err = badResult("output field %q", cut(k, 20))
		}
		if err != nil {
			return OutputResult{}, err
		}
	}
	return o, nil
}
