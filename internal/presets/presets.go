// Package presets holds the named ffmpeg presets: configuration, validated
// at start-up, that turn a preset name into a fixed ffmpeg argv.
//
// The argv is the security boundary of a Batch task: it never contains a
// byte from a request. The input is always the local file InputFile, the
// output always "output.<ext>", the input demuxer is pinned to mov/mp4,
// only the file protocol is allowed, and the codec arguments of a preset
// come from an allow-list of options and values (no option that reads or
// writes files, opens protocols or builds filter graphs from files).
//
// A message may choose a preset by name only.
package presets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
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
}

// format describes an allowed output extension.
type format struct {
	kind        Kind
	muxer       string
	contentType string
	encoders    []string // allowed values of the codec option
}

var formats = map[string]format{
	"mp3":  {KindAudio, "mp3", "audio/mpeg", []string{"libmp3lame"}},
	"m4a":  {KindAudio, "ipod", "audio/mp4", []string{"aac"}},
	"aac":  {KindAudio, "adts", "audio/aac", []string{"aac"}},
	"opus": {KindAudio, "opus", "audio/ogg", []string{"libopus"}},
	"ogg":  {KindAudio, "ogg", "audio/ogg", []string{"libvorbis", "libopus", "flac"}},
	"wav":  {KindAudio, "wav", "audio/wav", []string{"pcm_s16le", "pcm_s24le", "pcm_f32le"}},
	"flac": {KindAudio, "flac", "audio/flac", []string{"flac"}},
	"jpg":  {KindImage, "image2", "image/jpeg", []string{"mjpeg"}},
	"png":  {KindImage, "image2", "image/png", []string{"png"}},
	"webp": {KindImage, "webp", "image/webp", []string{"libwebp"}},
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
var decoders = map[Kind]string{
	KindAudio: "aac,aac_fixed,mp3,mp3float,mp2,mp2float,alac,opus,vorbis,flac,ac3,eac3,pcm_s16le,pcm_s16be,pcm_s24le,pcm_s24be,pcm_f32le,pcm_f32be",
	KindImage: "h264,hevc,mpeg4,mpeg2video,vp8,vp9,av1,libdav1d,mjpeg,png",
}

// Builtins returns the built-in presets: mp3 (default, VBR ~190 kbit/s),
// aac (AAC-LC 160 kbit/s in .m4a), opus (96 kbit/s in Ogg), wav (16-bit
// PCM) and thumbnail (one representative JPEG frame, 320 px wide).
func Builtins() []Preset {
	return []Preset{
		{Name: "mp3", Ext: "mp3", Args: []string{"-c:a", "libmp3lame", "-q:a", "2"}},
		{Name: "aac", Ext: "m4a", Args: []string{"-c:a", "aac", "-b:a", "160k"}},
		{Name: "opus", Ext: "opus", Args: []string{"-c:a", "libopus", "-b:a", "96k"}},
		{Name: "wav", Ext: "wav", Args: []string{"-c:a", "pcm_s16le"}},
		{Name: "thumbnail", Ext: "jpg", Args: []string{"-vf", "thumbnail,scale=320:-2", "-c:v", "mjpeg", "-q:v", "3"}},
	}
}

var nameRE = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// ValidName reports whether s is a valid preset name.
func ValidName(s string) bool { return nameRE.MatchString(s) }

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
	return p
}

var contentTypeRE = regexp.MustCompile(`^(audio|image)/[a-z0-9][a-z0-9.+-]{0,63}$`)

// Validate checks a preset: its name, extension, kind, content type and
// every argument against the allow-list.
func (p Preset) Validate() error {
	if !ValidName(p.Name) {
		return fmt.Errorf("preset %q: name must match [a-z0-9-]{1,32}", p.Name)
	}
	f, ok := formats[p.Ext]
	if !ok {
		return fmt.Errorf("preset %s: extension %q not allowed (allowed: %s)", p.Name, p.Ext, strings.Join(Extensions(), ", "))
	}
	if p.Kind != "" && p.Kind != f.kind {
		return fmt.Errorf("preset %s: kind %q does not match extension %s (%s)", p.Name, p.Kind, p.Ext, f.kind)
	}
	if p.ContentType != "" && !contentTypeRE.MatchString(p.ContentType) {
		return fmt.Errorf("preset %s: content type %q is not an audio/* or image/* media type", p.Name, p.ContentType)
	}
	if err := validateArgs(f, p.Args); err != nil {
		return fmt.Errorf("preset %s: %w", p.Name, err)
	}
	return nil
}

// OutputFile is the node-local output file name, "output.<ext>".
func (p Preset) OutputFile() string { return OutputBase + "." + p.Ext }

// Argv returns the full ffmpeg argv (Program first) for a validated preset.
func (p Preset) Argv() []string {
	p = p.normalize()
	f := formats[p.Ext]
	argv := []string{
		Program,
		"-nostdin", "-hide_banner", "-nostats", "-loglevel", "error",
		// input options: local files only, demuxer pinned (no probing into
		// HLS/concat/AVI), no external mov references, few decoders
		"-protocol_whitelist", "file",
		"-f", "mov,mp4,m4a,3gp,3g2,mj2",
		"-enable_drefs", "0", "-use_absolute_path", "0",
		"-codec_whitelist", decoders[f.kind],
		"-i", InputFile,
	}
	switch f.kind {
	case KindAudio:
		argv = append(argv, "-map", "0:a:0", "-vn", "-sn", "-dn")
	case KindImage:
		argv = append(argv, "-map", "0:v:0", "-an", "-sn", "-dn")
	}
	argv = append(argv, "-map_metadata", "-1")
	argv = append(argv, p.Args...)
	if f.kind == KindImage {
		argv = append(argv, "-frames:v", "1")
	}
	// An input that yields no frame (e.g. a zero timescale) must fail, not
	// exit 0 with a header-only output (found by FuzzTaskWrapper).
	argv = append(argv, "-xerror", "-abort_on", "empty_output_stream", "-f", f.muxer)
	if f.muxer == "image2" {
		argv = append(argv, "-update", "1")
	}
	return append(argv, "-y", p.OutputFile())
}

// CommandLine joins Argv with single spaces for a Batch task command line,
// which is not run under a shell. Validation guarantees no argument
// contains white space, quotes or shell metacharacters, so the split on
// the node is unambiguous.
func (p Preset) CommandLine() string { return strings.Join(p.Argv(), " ") }

// Set is a validated, immutable collection of presets.
type Set struct {
	m map[string]Preset
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
		if err := checkArgvSafe(p.Argv()); err != nil {
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
