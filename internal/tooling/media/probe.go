package media

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Info is what ffprobe reports about a file, reduced to what the pipeline's
// checks need.
type Info struct {
	// FormatName is ffprobe's format_name, e.g. "mov,mp4,m4a,3gp,3g2,mj2" or "mp3".
	FormatName string
	// Duration is the container duration (0 when unknown).
	Duration time.Duration
	// Size in bytes as ffprobe saw it.
	Size int64
	// Streams in file order.
	Streams []Stream
}

// Stream is one elementary stream.
type Stream struct {
	Index     int
	CodecName string // "aac", "mp3", "h264", "png", "mjpeg", …
	CodecType string // "audio", "video", "subtitle", "data"
	// Audio only.
	Channels   int
	SampleRate int
	// Video and images only.
	Width, Height int
	// Duration and StartTime of the stream (0 when unknown). For MP3, ffprobe
	// reports the LAME encoder delay as StartTime.
	Duration  time.Duration
	StartTime time.Duration
}

// Streams of one type, in file order.
func (i Info) streamsOf(codecType string) []Stream {
	var out []Stream
	for _, s := range i.Streams {
		if s.CodecType == codecType {
			out = append(out, s)
		}
	}
	return out
}

// AudioStreams returns the audio streams in file order.
func (i Info) AudioStreams() []Stream { return i.streamsOf("audio") }

// VideoStreams returns the video streams (images count as video) in file order.
func (i Info) VideoStreams() []Stream { return i.streamsOf("video") }

// AudioDuration is the metadata length of the first audio stream: its
// duration minus a positive start time (the encoder delay an MP3 carries),
// falling back to the container duration when the stream has none. It is
// cheap but approximate (frame padding); VerifyAudio decodes instead, see
// there. ok is false without an audio stream.
func (i Info) AudioDuration() (d time.Duration, ok bool) {
	as := i.AudioStreams()
	if len(as) == 0 {
		return 0, false
	}
	return as[0].playable(i.Duration), true
}

func (s Stream) playable(container time.Duration) time.Duration {
	d := s.Duration
	if d <= 0 {
		d = container
	}
	if s.StartTime > 0 && d > s.StartTime {
		d -= s.StartTime
	}
	return d
}

// Probe runs ffprobe -print_format json on path. A file ffprobe cannot read
// (not media, no moov) returns an error wrapping ErrProbe.
func Probe(ctx context.Context, path string) (Info, error) {
	abs, err := filepath.Abs(path) // "/…" can be neither an option nor a protocol
	if err != nil {
		return Info{}, fmt.Errorf("probe %s: %w", path, err)
	}
	out, err := output(ctx, ffprobeBin, "-v", "error", "-print_format", "json",
		"-show_format", "-show_streams", abs)
	if err != nil {
		return Info{}, fmt.Errorf("probe %s: %w: %w", path, ErrProbe, err)
	}
	info, err := ParseProbe(out)
	if err != nil {
		return Info{}, fmt.Errorf("probe %s: %w", path, err)
	}
	return info, nil
}

// probeJSON mirrors the part of ffprobe's JSON that Info keeps. Numbers
// arrive as strings ("2.000000", "44100", "N/A"), widths as numbers.
type probeJSON struct {
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
		Size       string `json:"size"`
	} `json:"format"`
	Streams []struct {
		Index      int    `json:"index"`
		CodecName  string `json:"codec_name"`
		CodecType  string `json:"codec_type"`
		Channels   int    `json:"channels"`
		SampleRate string `json:"sample_rate"`
		Width      int    `json:"width"`
		Height     int    `json:"height"`
		Duration   string `json:"duration"`
		StartTime  string `json:"start_time"`
	} `json:"streams"`
}

// ParseProbe decodes the output of
// `ffprobe -print_format json -show_format -show_streams`. Missing or "N/A"
// numbers become 0; malformed numbers and non-JSON input are errors
// wrapping ErrProbe.
func ParseProbe(data []byte) (Info, error) {
	var p probeJSON
	if err := json.Unmarshal(data, &p); err != nil {
		return Info{}, fmt.Errorf("parse ffprobe json: %w: %w", ErrProbe, err)
	}
	var info Info
	var err error
	info.FormatName = p.Format.FormatName
	if info.Duration, err = parseSeconds(p.Format.Duration); err != nil {
		return Info{}, fmt.Errorf("parse ffprobe format duration: %w", err)
	}
	if info.Size, err = parseInt(p.Format.Size); err != nil {
		return Info{}, fmt.Errorf("parse ffprobe format size: %w", err)
	}
	for _, s := range p.Streams {
		st := Stream{
			Index: s.Index, CodecName: s.CodecName, CodecType: s.CodecType,
			Channels: s.Channels, Width: s.Width, Height: s.Height,
		}
		sr, err := parseInt(s.SampleRate)
		if err != nil || sr > math.MaxInt32 {
			return Info{}, fmt.Errorf("parse ffprobe stream %d sample_rate %q: %w", s.Index, s.SampleRate, ErrProbe)
		}
		st.SampleRate = int(sr)
		if st.Duration, err = parseSeconds(s.Duration); err != nil {
			return Info{}, fmt.Errorf("parse ffprobe stream %d duration: %w", s.Index, err)
		}
		if st.StartTime, err = parseSeconds(s.StartTime); err != nil {
			return Info{}, fmt.Errorf("parse ffprobe stream %d start_time: %w", s.Index, err)
		}
		info.Streams = append(info.Streams, st)
	}
	return info, nil
}

func unknown(s string) bool {
	s = strings.TrimSpace(s)
	return s == "" || strings.EqualFold(s, "N/A")
}

func parseSeconds(s string) (time.Duration, error) {
	if unknown(s) {
		return 0, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	// ±2^63 ns is about 292 years; anything beyond is not a real duration.
	if err != nil || math.IsNaN(f) || math.Abs(f) > 9e9 {
		return 0, fmt.Errorf("%w: bad seconds %q", ErrProbe, s)
	}
	return time.Duration(math.Round(f * float64(time.Second))), nil
}

func parseInt(s string) (int64, error) {
	if unknown(s) {
		return 0, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: bad integer %q", ErrProbe, s)
	}
	return n, nil
}
