// Package presets holds the named ffmpeg presets and media profiles:
// configuration, validated at start-up, that turn a name into a fixed task
// command line.
//
// A preset is one output (an mp3, a thumbnail, an H.264 MP4, an HLS
// ladder). A profile is a named list of outputs made from one source by one
// task; every preset is also a one-output profile of the same name.
//
// The argv is the security boundary of a Batch task: it never contains a
// byte from a request. The input is always the local file InputFile, the
// outputs have fixed node-local names ("output.<ext>", "output-<n>.<ext>",
// "hls/..."), the input demuxer is pinned to mov/mp4, only the file
// protocol is allowed, and the codec arguments of a preset come from an
// allow-list of options and values (no option that reads or writes files,
// opens protocols or builds filter graphs from files). Playlist and segment
// options are fixed by the output kind.
//
// A message may choose a profile (or preset) by name only.
package presets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/ffpipe/ffpipe/internal/request"
)

// Fixed node-local file names (relative to the task working directory).
const (
	// InputFile is where the Batch resource file is downloaded.
	InputFile = "input.mp4"
	// OutputBase is the output file name without the extension.
	OutputBase = "output"
	// Program is the ffmpeg executable, resolved through PATH on the node.
	Program = "ffmpeg"
)

// Kind is what a preset produces.
type Kind string

// Kinds.
const (
	KindAudio Kind = "audio" // the first audio stream, re-encoded
	KindImage Kind = "image" // one frame of the first video stream
	KindVideo Kind = "video" // the first video stream (and the first audio stream, if any), re-encoded
	KindHLS   Kind = "hls"   // an H.264/AAC ladder of HLS renditions with a master playlist
)

// DefaultName is the preset used when configuration names none.
const DefaultName = "mp3"

// Preset is one named transcoding recipe.
type Preset struct {
	// Name is 1–32 of [a-z0-9-].
	Name string `json:"name,omitempty"`
	// Ext is the output extension without the dot, from the allow-list
	// (mp3, m4a, aac, opus, ogg, wav, flac, jpg, png, webp).
	Ext string `json:"ext"`
	// ContentType of the output blob; defaults from Ext.
	ContentType string `json:"contentType,omitempty"`
	// Kind follows from Ext; if set it must agree.
	Kind Kind `json:"kind,omitempty"`
	// Args are the encoder options placed between the stream selection
	// and the output, e.g. ["-c:a","libmp3lame","-q:a","2"]. Only
	// allow-listed options with valid values are accepted.
	Args []string `json:"args"`
	// MaxHeight (video only) scales the picture down to at most this
	// many lines, keeping the aspect ratio and even dimensions; a smaller
	// source keeps its height (never upscaled). 0 keeps the source size.
	MaxHeight int `json:"maxHeight,omitempty"`
	// Ladder (hls only) lists the rung heights, from Rungs(). Rungs above
	// the source's height are dropped when the task runs. Default: 360,
	// 540, 720, 1080.
	Ladder []int `json:"ladder,omitempty"`
}

// format describes an allowed output extension.
type format struct {
	kind        Kind
	muxer       string
	contentType string
	encoders    []string // allowed values of the codec option (the video codec for video kinds)
	// audioEncoders are the allowed values of -c:a for video kinds.
	audioEncoders []string
}

var formats = map[string]format{
	"mp4":  {KindVideo, "mp4", "video/mp4", []string{"libx264", "libx265"}, []string{"aac"}},
	"webm": {KindVideo, "webm", "video/webm", []string{"libvpx-vp9"}, []string{"libopus"}},
	"m3u8": {KindHLS, "hls", "application/vnd.apple.mpegurl", []string{"libx264"}, []string{"aac"}},
	"mp3":  {KindAudio, "mp3", "audio/mpeg", []string{"libmp3lame"}, nil},
	"m4a":  {KindAudio, "ipod", "audio/mp4", []string{"aac"}, nil},
	"aac":  {KindAudio, "adts", "audio/aac", []string{"aac"}, nil},
	"opus": {KindAudio, "opus", "audio/ogg", []string{"libopus"}, nil},
	"ogg":  {KindAudio, "ogg", "audio/ogg", []string{"libvorbis", "libopus", "flac"}, nil},
	"wav":  {KindAudio, "wav", "audio/wav", []string{"pcm_s16le", "pcm_s24le", "pcm_f32le"}, nil},
	"flac": {KindAudio, "flac", "audio/flac", []string{"flac"}, nil},
	"jpg":  {KindImage, "image2", "image/jpeg", []string{"mjpeg"}, nil},
	"png":  {KindImage, "image2", "image/png", []string{"png"}, nil},
	"webp": {KindImage, "webp", "image/webp", []string{"libwebp"}, nil},
}

// Extensions returns the allowed output extensions, sorted.
func Extensions() []string {
	exts := make([]string, 0, len(formats))
	for e := range formats {
		exts = append(exts, e)
	}
	slices.Sort(exts)
	return exts
}

// Decoders allowed to open, per kind (-codec_whitelist). Probing opens a
// decoder for every stream; the whitelist keeps decoders for streams we do
// not use (and their bugs) unreachable. ffmpeg logs "Codec (x) not on
// whitelist" for the skipped streams; that line is expected.
const (
	audioDecoders = "aac,aac_fixed,mp3,mp3float,mp2,mp2float,alac,opus,vorbis,flac,ac3,eac3,pcm_s16le,pcm_s16be,pcm_s24le,pcm_s24be,pcm_f32le,pcm_f32be"
	videoDecoders = "h264,hevc,mpeg4,mpeg2video,vp8,vp9,av1,libdav1d,mjpeg,png"
)

var decoders = map[Kind]string{
	KindAudio: audioDecoders,
	KindImage: videoDecoders,
	KindVideo: videoDecoders + "," + audioDecoders,
	KindHLS:   videoDecoders + "," + audioDecoders,
}

// Builtins returns the built-in presets: mp3 (default, VBR ~190 kbit/s),
// aac (AAC-LC 160 kbit/s in .m4a), opus (96 kbit/s in Ogg), wav (16-bit
// PCM), thumbnail (one representative JPEG frame, 320 px wide), mp4-720
// (H.264 high/AAC MP4 at most 720 lines, CRF 23, +faststart) and hls (the
// H.264/AAC ladder 360p, 540p, 720p, 1080p in 6 s segments).
func Builtins() []Preset {
	return []Preset{
		{Name: "mp3", Ext: "mp3", Args: []string{"-c:a", "libmp3lame", "-q:a", "2"}},
		{Name: "aac", Ext: "m4a", Args: []string{"-c:a", "aac", "-b:a", "160k"}},
		{Name: "opus", Ext: "opus", Args: []string{"-c:a", "libopus", "-b:a", "96k"}},
		{Name: "wav", Ext: "wav", Args: []string{"-c:a", "pcm_s16le"}},
		{Name: "thumbnail", Ext: "jpg", Args: []string{"-vf", "thumbnail,scale=320:-2", "-c:v", "mjpeg", "-q:v", "3"}},
		{Name: "mp4-720", Ext: "mp4", MaxHeight: 720, Args: []string{
			"-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-profile:v", "high", "-pix_fmt", "yuv420p",
			"-c:a", "aac", "-b:a", "128k"}},
		{Name: "hls", Ext: "m3u8", Ladder: DefaultLadder(), Args: []string{"-preset", "veryfast"}},
	}
}

// normalize fills Kind and ContentType from Ext.
func (p Preset) normalize() Preset {
	f, ok := formats[p.Ext]
	if !ok {
		return p
	}
	if p.Kind == "" {
		p.Kind = f.kind
	}
	if p.ContentType == "" {
		p.ContentType = f.contentType
	}
	p.Args = slices.Clone(p.Args)
	p.Ladder = slices.Clone(p.Ladder)
	if p.Kind == KindHLS && len(p.Ladder) == 0 {
		p.Ladder = DefaultLadder()
	}
	slices.Sort(p.Ladder)
	return p
}

var contentTypeRE = regexp.MustCompile(`^(audio|image|video)/[a-z0-9][a-z0-9.+-]{0,63}$`)

// Validate checks a preset: its name, extension, kind, content type and
// every argument against the allow-list.
func (p Preset) Validate() error {
	if !request.ValidPresetName(p.Name) {
		return fmt.Errorf("preset %q: name must match [a-z0-9-]{1,32}", p.Name)
	}
	f, ok := formats[p.Ext]
	if !ok {
		return fmt.Errorf("preset %s: extension %q not allowed (allowed: %s)", p.Name, p.Ext, strings.Join(Extensions(), ", "))
	}
	if p.Kind != "" && p.Kind != f.kind {
		return fmt.Errorf("preset %s: kind %q does not match extension %s (%s)", p.Name, p.Kind, p.Ext, f.kind)
	}
	if p.ContentType != "" && !contentTypeRE.MatchString(p.ContentType) && p.ContentType != f.contentType {
		return fmt.Errorf("preset %s: content type %q is not an audio/*, image/* or video/* media type", p.Name, p.ContentType)
	}
	if err := validateArgs(f, p.Args); err != nil {
		return fmt.Errorf("preset %s: %w", p.Name, err)
	}
	if err := validateShape(f, p); err != nil {
		return fmt.Errorf("preset %s: %w", p.Name, err)
	}
	return nil
}

// MaxHeightLimit bounds a video preset's MaxHeight.
const MaxHeightLimit = 4320

// validateShape checks the fields that only some kinds take.
func validateShape(f format, p Preset) error {
	if f.kind != KindVideo && p.MaxHeight != 0 {
		return fmt.Errorf("maxHeight applies to video outputs only")
	}
	if f.kind != KindHLS && len(p.Ladder) > 0 {
		return fmt.Errorf("ladder applies to hls outputs only")
	}
	switch f.kind {
	case KindVideo:
		if p.MaxHeight < 0 || p.MaxHeight > MaxHeightLimit || p.MaxHeight%2 != 0 {
			return fmt.Errorf("maxHeight %d: want an even number of lines in [2, %d] (or 0 for the source's)", p.MaxHeight, MaxHeightLimit)
		}
		if p.MaxHeight > 0 && (slices.Contains(p.Args, "-vf") || slices.Contains(p.Args, "-filter:v")) {
			return fmt.Errorf("maxHeight and a scale filter exclude each other")
		}
	case KindHLS:
		seen := map[int]bool{}
		for _, h := range p.Ladder {
			if _, ok := rungFor(h); !ok {
				return fmt.Errorf("ladder rung %d not allowed (allowed: %v)", h, Rungs())
			}
			if seen[h] {
				return fmt.Errorf("ladder rung %d given twice", h)
			}
			seen[h] = true
		}
	}
	return nil
}

// Set is a validated, immutable collection of presets.
type Set struct {
	m map[string]Preset
	// custom names the presets that came from FFPIPE_PRESETS.
	custom map[string]bool
}

// New validates ps and returns them as a Set. Later presets with the same
// name replace earlier ones.
func New(ps ...Preset) (*Set, error) {
	s := &Set{m: make(map[string]Preset, len(ps))}
	for _, p := range ps {
		if err := p.Validate(); err != nil {
			return nil, err
		}
		p = p.normalize()
		if err := checkArgvSafe(p.Args); err != nil {
			return nil, fmt.Errorf("preset %s: %w", p.Name, err)
		}
		s.m[p.Name] = p
	}
	return s, nil
}

// Default returns the built-in set.
func Default() *Set {
	s, err := New(Builtins()...)
	if err != nil {
		panic(err) // a bug in Builtins; covered by tests
	}
	return s
}

// Load returns the built-ins plus the custom presets in customJSON (the
// FFPIPE_PRESETS setting), which may add presets or replace built-ins. An
// empty string gives the built-ins. The JSON is an object from name to
// preset, strictly decoded:
//
//	{"mp3-low": {"ext": "mp3", "args": ["-c:a", "libmp3lame", "-b:a", "96k"]}}
func Load(customJSON string) (*Set, error) {
	all := Builtins()
	if strings.TrimSpace(customJSON) != "" {
		custom, err := parseCustom([]byte(customJSON))
		if err != nil {
			return nil, fmt.Errorf("load presets: %w", err)
		}
		all = append(all, custom...)
	}
	s, err := New(all...)
	if err != nil {
		return nil, fmt.Errorf("load presets: %w", err)
	}
	s.custom = map[string]bool{}
	for _, p := range all[len(Builtins()):] {
		s.custom[p.Name] = true
	}
	return s, nil
}

// MaxCustomJSON caps the FFPIPE_PRESETS text.
const MaxCustomJSON = 64 << 10

func parseCustom(b []byte) ([]Preset, error) {
	if len(b) > MaxCustomJSON {
		return nil, fmt.Errorf("custom presets: more than %d bytes", MaxCustomJSON)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("custom presets: want a JSON object from name to preset: %w", err)
	}
	names := make([]string, 0, len(raw))
	for n := range raw {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]Preset, 0, len(raw))
	for _, n := range names {
		var p Preset
		dec := json.NewDecoder(bytes.NewReader(raw[n]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("custom preset %q: %w", n, err)
		}
		if p.Name != "" && p.Name != n {
			return nil, fmt.Errorf("custom preset %q: name field %q differs from its key", n, p.Name)
		}
		p.Name = n
		out = append(out, p)
	}
	return out, nil
}

// Get returns the preset called name.
func (s *Set) Get(name string) (Preset, bool) {
	p, ok := s.m[name]
	if ok {
		p.Args = slices.Clone(p.Args)
		p.Ladder = slices.Clone(p.Ladder)
	}
	return p, ok
}

// Ext returns the output extension of the preset called name; it fits
// request.Defaults.Ext.
func (s *Set) Ext(name string) (string, bool) {
	p, ok := s.m[name]
	return p.Ext, ok
}

// Names returns the preset names, sorted.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.m))
	for n := range s.m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
