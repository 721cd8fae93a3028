package presets

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// MaxArgs bounds a preset's Args.
const MaxArgs = 32

// option describes one allowed preset option. Every allowed option takes
// exactly one value.
type option struct {
	kinds []Kind
	// canonical groups aliases (-c:a, -codec:a, -acodec) so an option
	// cannot be given twice under different spellings.
	canonical string
	check     func(f format, v string) error
}

var (
	bitrateRE  = regexp.MustCompile(`^[1-9][0-9]{0,5}k?$`)
	qualityRE  = regexp.MustCompile(`^[0-9]{1,3}(\.[0-9]{1,3})?$`)
	durationRE = regexp.MustCompile(`^[0-9]{1,6}(\.[0-9]{1,3})?$`)
	identRE    = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	// filter parameters: no quotes, commas, semicolons, brackets, slashes
	// or spaces, so no file names and no extra filters can be smuggled in.
	filterParamRE = regexp.MustCompile(`^[A-Za-z0-9:._=-]{0,128}$`)
)

// Filters allowed in -af / -vf chains. None of them reads or writes files
// (no movie/amovie, subtitles/ass, lut3d/lut1d, drawtext, sendcmd, ...).
var (
	audioFilters = []string{"aresample", "aformat", "volume", "loudnorm", "dynaudnorm", "highpass", "lowpass", "atrim", "afade", "asetrate"}
	videoFilters = []string{"scale", "thumbnail", "fps", "format", "crop", "pad", "transpose", "hflip", "vflip", "trim", "setsar"}
)

func encoderCheck(f format, v string) error {
	if !slices.Contains(f.encoders, v) {
		return fmt.Errorf("encoder %q not allowed for this extension (allowed: %s)", v, strings.Join(f.encoders, ", "))
	}
	return nil
}

// audioEncoderCheck checks -c:a: the format's own codec for audio kinds,
// its audio track's codec for video kinds.
func audioEncoderCheck(f format, v string) error {
	if f.kind == KindVideo || f.kind == KindHLS {
		if !slices.Contains(f.audioEncoders, v) {
			return fmt.Errorf("audio encoder %q not allowed for this extension (allowed: %s)", v, strings.Join(f.audioEncoders, ", "))
		}
		return nil
	}
	return encoderCheck(f, v)
}

// scaleCheck accepts one scale filter with explicit even dimensions (or
// -2, "keep the aspect ratio, even", for one of them): the only video
// filter a video output may carry.
func scaleCheck(_ format, v string) error {
	w, h, ok := strings.Cut(strings.TrimPrefix(v, "scale="), ":")
	if !strings.HasPrefix(v, "scale=") || !ok {
		return fmt.Errorf("filter %q: want scale=W:H with even W and H (or -2 for one of them)", v)
	}
	dim := func(s string) (int, bool) {
		if s == "-2" {
			return -2, true
		}
		n, err := strconv.Atoi(s)
		return n, err == nil && strconv.Itoa(n) == s && n >= 2 && n <= 8192 && n%2 == 0
	}
	wn, okW := dim(w)
	hn, okH := dim(h)
	if !okW || !okH || wn == -2 && hn == -2 {
		return fmt.Errorf("filter %q: want scale=W:H with even W and H in [2, 8192] (or -2 for one of them)", v)
	}
	return nil
}

var levelRE = regexp.MustCompile(`^[1-6](\.[0-2])?$`)

func reCheck(re *regexp.Regexp, what string) func(format, string) error {
	return func(_ format, v string) error {
		if !re.MatchString(v) {
			return fmt.Errorf("%s %q is not valid", what, v)
		}
		return nil
	}
}

func intCheck(lo, hi int) func(format, string) error {
	return func(_ format, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi || strconv.Itoa(n) != v {
			return fmt.Errorf("value %q is not an integer in [%d, %d]", v, lo, hi)
		}
		return nil
	}
}

func oneOf(vals ...string) func(format, string) error {
	return func(_ format, v string) error {
		if !slices.Contains(vals, v) {
			return fmt.Errorf("value %q not allowed (allowed: %s)", v, strings.Join(vals, ", "))
		}
		return nil
	}
}

func filterCheck(allowed []string) func(format, string) error {
	return func(_ format, v string) error {
		if v == "" || len(v) > 512 {
			return fmt.Errorf("filter chain must be 1-512 bytes")
		}
		for _, el := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(el, "=")
			if !slices.Contains(allowed, name) {
				return fmt.Errorf("filter %q not allowed (allowed: %s)", name, strings.Join(allowed, ", "))
			}
			if !filterParamRE.MatchString(params) {
				return fmt.Errorf("filter %s: parameters %q contain characters outside [A-Za-z0-9:._=-]", name, params)
			}
		}
		return nil
	}
}

var (
	audio      = []Kind{KindAudio}
	image      = []Kind{KindImage}
	both       = []Kind{KindAudio, KindImage}
	video      = []Kind{KindVideo}
	audioVideo = []Kind{KindAudio, KindVideo}
	imageVideo = []Kind{KindImage, KindVideo}
	encoded    = []Kind{KindVideo, KindHLS}
)

var options = map[string]option{
	"-c:a":               {audioVideo, "codec:a", audioEncoderCheck},
	"-codec:a":           {audioVideo, "codec:a", audioEncoderCheck},
	"-acodec":            {audioVideo, "codec:a", audioEncoderCheck},
	"-b:a":               {audioVideo, "b:a", reCheck(bitrateRE, "bitrate")},
	"-q:a":               {audio, "q:a", reCheck(qualityRE, "quality")},
	"-ar":                {audioVideo, "ar", intCheck(8000, 192000)},
	"-ac":                {audioVideo, "ac", intCheck(1, 8)},
	"-sample_fmt":        {audio, "sample_fmt", reCheck(identRE, "sample format")},
	"-af":                {audio, "filter:a", filterCheck(audioFilters)},
	"-filter:a":          {audio, "filter:a", filterCheck(audioFilters)},
	"-vbr":               {audio, "vbr", oneOf("on", "off", "constrained")},
	"-application":       {audio, "application", oneOf("voip", "audio", "lowdelay")},
	"-c:v":               {imageVideo, "codec:v", encoderCheck},
	"-codec:v":           {imageVideo, "codec:v", encoderCheck},
	"-vcodec":            {imageVideo, "codec:v", encoderCheck},
	"-q:v":               {image, "q:v", intCheck(0, 100)},
	"-quality":           {image, "quality", intCheck(0, 100)},
	"-pix_fmt":           {imageVideo, "pix_fmt", pixFmtCheck},
	"-vf":                {imageVideo, "filter:v", videoFilterCheck},
	"-filter:v":          {imageVideo, "filter:v", videoFilterCheck},
	"-compression_level": {both, "compression_level", intCheck(0, 12)},
	"-ss":                {both, "ss", reCheck(durationRE, "time offset (seconds)")},
	"-t":                 {both, "t", reCheck(durationRE, "duration (seconds)")},
	// video encoding (mp4, webm) and, for the rate-independent ones, HLS
	"-crf":       {video, "crf", intCheck(0, 63)},
	"-preset":    {encoded, "preset", oneOf("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")},
	"-b:v":       {video, "b:v", reCheck(bitrateRE, "bitrate")},
	"-maxrate":   {video, "maxrate", reCheck(bitrateRE, "bitrate")},
	"-bufsize":   {video, "bufsize", reCheck(bitrateRE, "bitrate")},
	"-g":         {video, "g", intCheck(1, 1200)},
	"-profile:v": {encoded, "profile:v", oneOf("baseline", "main", "high", "main10")},
	"-level":     {encoded, "level", reCheck(levelRE, "level")},
}

// pixFmtCheck: any identifier for images; the 8- and 10-bit 4:2:0
// formats every H.264/H.265/VP9 player decodes for video.
func pixFmtCheck(f format, v string) error {
	if f.kind == KindVideo {
		return oneOf("yuv420p", "yuv420p10le")(f, v)
	}
	return reCheck(identRE, "pixel format")(f, v)
}

// videoFilterCheck: the image filter chain for images; a single even
// scale for video.
func videoFilterCheck(f format, v string) error {
	if f.kind == KindVideo {
		return scaleCheck(f, v)
	}
	return filterCheck(videoFilters)(f, v)
}

// AllowedOptions returns the option names a preset's Args may use, sorted.
func AllowedOptions() []string {
	names := make([]string, 0, len(options))
	for n := range options {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func validateArgs(f format, args []string) error {
	if len(args) > MaxArgs {
		return fmt.Errorf("more than %d args", MaxArgs)
	}
	if len(args)%2 != 0 {
		return fmt.Errorf("args must be option/value pairs, got %d items", len(args))
	}
	seen := map[string]bool{}
	for i := 0; i < len(args); i += 2 {
		name, val := args[i], args[i+1]
		opt, ok := options[name]
		if !ok {
			return fmt.Errorf("option %q not allowed (allowed: %s)", name, strings.Join(AllowedOptions(), " "))
		}
		if !slices.Contains(opt.kinds, f.kind) {
			return fmt.Errorf("option %s not allowed for %s output", name, f.kind)
		}
		if seen[opt.canonical] {
			return fmt.Errorf("option %s given twice", name)
		}
		seen[opt.canonical] = true
		if err := opt.check(f, val); err != nil {
			return fmt.Errorf("option %s: %w", name, err)
		}
	}
	return nil
}

// checkArgvSafe is the last line of defence for the joined command line:
// every argument is non-empty and made of characters that a Batch node
// (which does not use a shell, but whose exact splitting rules are
// undocumented) cannot split or interpret.
func checkArgvSafe(argv []string) error {
	for _, a := range argv {
		if a == "" {
			return fmt.Errorf("empty argument in argv")
		}
		for i := 0; i < len(a); i++ {
			c := a[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
				strings.IndexByte("-_.,:=", c) >= 0
			if !ok {
				return fmt.Errorf("argument %q contains %q, which is not allowed on a command line", a, c)
			}
		}
	}
	return nil
}
