package presets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/request"
)

// Output is one output of a profile: a preset, named uniquely within the
// profile by its Name.
type Output struct {
	Preset
	// Optional outputs are left out when the source lacks the stream they
	// need (the thumbnail of an audio-only podcast); a required one fails
	// the task with no_video or no_audio.
	Optional bool `json:"optional,omitempty"`
}

// needs is the source stream an output cannot do without.
func (o Output) needs() Kind {
	if o.Kind == KindAudio {
		return KindAudio
	}
	return KindVideo // image, video, hls
}

// Profile is a named list of outputs made from one source by one task.
type Profile struct {
	// Name is 1–32 of [a-z0-9-], like a preset's.
	Name    string
	Outputs []Output
	// Slots is the Batch requiredSlots of the profile's tasks: 1 for
	// audio and images, 2 when a video or HLS output needs the cores.
	Slots int
}

// Limits of a profile.
const (
	MaxOutputs = 8
	MaxSlots   = 64
)

// DefaultProfile is the profile used when nothing names one.
const DefaultProfile = DefaultName

// OutputFile is output i's node-local file ("output.<ext>" for the first,
// "output-<i>.<ext>" for the others, HLSDir/HLSMaster for HLS). None of it
// comes from a request.
func (p Profile) OutputFile(i int) string {
	o := p.Outputs[i]
	switch {
	case o.Kind == KindHLS:
		return HLSDir + "/" + HLSMaster
	case i == 0:
		return OutputBase + "." + o.Ext
	}
	return OutputBase + "-" + strconv.Itoa(i) + "." + o.Ext
}

// HLS returns the index of the profile's HLS output, or -1.
func (p Profile) HLS() int {
	return slices.IndexFunc(p.Outputs, func(o Output) bool { return o.Kind == KindHLS })
}

// Validate checks a profile: its name, every output, unique output names,
// distinct extensions for the file outputs (their names differ only by
// extension under the default template), at most one HLS output, slots.
func (p Profile) Validate() error {
	if !request.ValidPresetName(p.Name) {
		return fmt.Errorf("profile %q: name must match [a-z0-9-]{1,32}", p.Name)
	}
	if len(p.Outputs) == 0 || len(p.Outputs) > MaxOutputs {
		return fmt.Errorf("profile %s: want 1-%d outputs, got %d", p.Name, MaxOutputs, len(p.Outputs))
	}
	names, exts := map[string]bool{}, map[string]bool{}
	for _, o := range p.Outputs {
		if err := o.Validate(); err != nil {
			return fmt.Errorf("profile %s: output: %w", p.Name, err)
		}
		for _, a := range o.Argv() {
			if err := scriptSafe(a); err != nil {
				return fmt.Errorf("profile %s: output %s: %w", p.Name, o.Name, err)
			}
		}
		if o.Optional && o.Kind != KindImage {
			return fmt.Errorf("profile %s: output %s: only image outputs can be optional", p.Name, o.Name)
		}
		if names[o.Name] {
			return fmt.Errorf("profile %s: two outputs named %s", p.Name, o.Name)
		}
		names[o.Name] = true
		if exts[o.Ext] {
			return fmt.Errorf("profile %s: two outputs with extension %s (their output names would collide)", p.Name, o.Ext)
		}
		exts[o.Ext] = true
	}
	if p.Slots < 1 || p.Slots > MaxSlots {
		return fmt.Errorf("profile %s: slots %d outside [1, %d]", p.Name, p.Slots, MaxSlots)
	}
	return nil
}

// normalize fills the outputs' kinds and the default slots.
func (p Profile) normalize() Profile {
	outs := make([]Output, len(p.Outputs))
	heavy := false
	for i, o := range p.Outputs {
		o.Preset = o.Preset.normalize()
		outs[i] = o
		heavy = heavy || o.Kind == KindVideo || o.Kind == KindHLS
	}
	p.Outputs = outs
	if p.Slots == 0 {
		p.Slots = 1
		if heavy {
			p.Slots = 2
		}
	}
	return p
}

func (p Profile) clone() Profile {
	p.Outputs = slices.Clone(p.Outputs)
	for i := range p.Outputs {
		p.Outputs[i].Args = slices.Clone(p.Outputs[i].Args)
		p.Outputs[i].Ladder = slices.Clone(p.Outputs[i].Ladder)
	}
	return p
}

// Weights of the wall-clock budget, in minutes per 100 MiB of input:
// audio 1, video 4, an HLS rung 2 (the default ladder 8); images nothing.
const wallChunk = 100 << 20

func (o Output) wallWeight() int {
	switch o.Kind {
	case KindAudio:
		return 1
	case KindVideo:
		return 4
	case KindHLS:
		return 2 * len(o.Ladder)
	}
	return 0
}

// MaxWallClock is the Batch maxWallClockTime of a task of this profile on
// an input of size bytes: base plus, per 100 MiB of input, a minute per
// audio output, four per video output and two per HLS rung, rounded up to
// the second. It is capped at a week (Batch's default task lifetime).
func (p Profile) MaxWallClock(base time.Duration, size int64) time.Duration {
	w := 0
	for _, o := range p.Outputs {
		w += o.wallWeight()
	}
	const week = 7 * 24 * time.Hour
	extra := float64(max(size, 0)) / wallChunk * float64(w) * float64(time.Minute)
	if extra >= float64(week) {
		return week
	}
	d := base + time.Duration(extra)
	d = d.Truncate(time.Second) + time.Duration(min(d%time.Second, 1)*time.Second)
	return min(d, week)
}

// OneOutput is the one-output profile of a preset.
func OneOutput(p Preset) Profile {
	return Profile{Name: p.Name, Outputs: []Output{{Preset: p}}}.normalize()
}

// BuiltinProfiles are the multi-output built-ins: podcast (mp3, opus and,
// when there is a picture, a thumbnail), web (an H.264/AAC MP4 of at most
// 720 lines with +faststart, and a thumbnail) and hls (the hls preset's
// ladder). Each refers to the built-in presets; every preset is also a
// one-output profile of its own name.
func BuiltinProfiles(s *Set) []Profile {
	get := func(n string, optional bool) Output {
		p, _ := s.Get(n)
		return Output{Preset: p, Optional: optional}
	}
	return []Profile{
		{Name: "podcast", Outputs: []Output{get("mp3", false), get("opus", false), get("thumbnail", true)}},
		{Name: "web", Outputs: []Output{get("mp4-720", false), get("thumbnail", false)}},
		{Name: "hls", Outputs: []Output{get("hls", false)}},
	}
}

// Profiles is a validated, immutable collection of profiles.
type Profiles struct {
	m map[string]Profile
}

// NewProfiles builds the profile set from presets s, in increasing
// precedence: every built-in preset as a one-output profile, the built-in
// profiles, every custom preset of s as a one-output profile (so a custom
// preset named like a built-in profile keeps its meaning), then custom.
func NewProfiles(s *Set, custom ...Profile) (*Profiles, error) {
	ps := &Profiles{m: map[string]Profile{}}
	add := func(p Profile) error {
		p = p.normalize()
		if err := p.Validate(); err != nil {
			return err
		}
		ps.m[p.Name] = p
		return nil
	}
	for _, n := range s.Names() {
		if !s.custom[n] {
			p, _ := s.Get(n)
			_ = add(OneOutput(p)) // valid: s validated it
		}
	}
	for _, p := range BuiltinProfiles(s) {
		if err := add(p); err != nil {
			return nil, fmt.Errorf("built-in %w", err)
		}
	}
	for _, n := range s.Names() {
		if s.custom[n] {
			p, _ := s.Get(n)
			_ = add(OneOutput(p))
		}
	}
	for _, p := range custom {
		if err := add(p); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// DefaultProfiles returns the built-in profiles over the built-in presets.
func DefaultProfiles() *Profiles {
	ps, err := NewProfiles(Default())
	if err != nil {
		panic(err) // a bug in the built-ins; covered by tests
	}
	return ps
}

// LoadProfiles returns the profiles over s plus the custom profiles in
// customJSON (the FFPIPE_PROFILES setting). The JSON is an object from
// name to profile, strictly decoded; an output either names a preset of s
// or defines one inline:
//
//	{"lecture": {"outputs": [{"preset": "mp3"}, {"preset": "thumbnail", "optional": true},
//	                         {"name": "small", "ext": "mp4", "maxHeight": 480, "args": ["-c:v", "libx264", "-crf", "26"]}],
//	             "slots": 2}}
func LoadProfiles(s *Set, customJSON string) (*Profiles, error) {
	var custom []Profile
	if strings.TrimSpace(customJSON) != "" {
		var err error
		if custom, err = parseProfiles(s, []byte(customJSON)); err != nil {
			return nil, fmt.Errorf("load profiles: %w", err)
		}
	}
	ps, err := NewProfiles(s, custom...)
	if err != nil {
		return nil, fmt.Errorf("load profiles: %w", err)
	}
	return ps, nil
}

type profileJSON struct {
	Outputs []outputJSON `json:"outputs"`
	Slots   int          `json:"slots,omitempty"`
}

type outputJSON struct {
	Preset   string `json:"preset,omitempty"`
	Optional bool   `json:"optional,omitempty"`
	// inline definition (Preset fields)
	Name        string   `json:"name,omitempty"`
	Ext         string   `json:"ext,omitempty"`
	ContentType string   `json:"contentType,omitempty"`
	Kind        Kind     `json:"kind,omitempty"`
	Args        []string `json:"args,omitempty"`
	MaxHeight   int      `json:"maxHeight,omitempty"`
	Ladder      []int    `json:"ladder,omitempty"`
}

func parseProfiles(s *Set, b []byte) ([]Profile, error) {
	if len(b) > MaxCustomJSON {
		return nil, fmt.Errorf("custom profiles: more than %d bytes", MaxCustomJSON)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("custom profiles: want a JSON object from name to profile: %w", err)
	}
	names := make([]string, 0, len(raw))
	for n := range raw {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]Profile, 0, len(raw))
	for _, n := range names {
		var pj profileJSON
		dec := json.NewDecoder(bytes.NewReader(raw[n]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&pj); err != nil {
			return nil, fmt.Errorf("custom profile %q: %w", n, err)
		}
		p := Profile{Name: n, Slots: pj.Slots}
		if pj.Slots < 0 {
			return nil, fmt.Errorf("custom profile %q: slots %d is negative", n, pj.Slots)
		}
		for i, oj := range pj.Outputs {
			o, err := oj.output(s)
			if err != nil {
				return nil, fmt.Errorf("custom profile %q: output %d: %w", n, i, err)
			}
			p.Outputs = append(p.Outputs, o)
		}
		out = append(out, p)
	}
	return out, nil
}

func (oj outputJSON) output(s *Set) (Output, error) {
	if oj.Preset != "" {
		if oj.Name != "" || oj.Ext != "" || oj.ContentType != "" || oj.Kind != "" || oj.Args != nil || oj.MaxHeight != 0 || oj.Ladder != nil {
			return Output{}, fmt.Errorf("give either a preset name or an inline preset, not both")
		}
		p, ok := s.Get(oj.Preset)
		if !ok {
			return Output{}, fmt.Errorf("preset %q is not configured", oj.Preset)
		}
		return Output{Preset: p, Optional: oj.Optional}, nil
	}
	p := Preset{Name: oj.Name, Ext: oj.Ext, ContentType: oj.ContentType, Kind: oj.Kind, Args: oj.Args, MaxHeight: oj.MaxHeight, Ladder: oj.Ladder}
	if err := p.Validate(); err != nil {
		return Output{}, err
	}
	if err := checkArgvSafe(p.Args); err != nil {
		return Output{}, fmt.Errorf("preset %s: %w", p.Name, err)
	}
	return Output{Preset: p, Optional: oj.Optional}, nil
}

// Get returns the profile called name.
func (ps *Profiles) Get(name string) (Profile, bool) {
	p, ok := ps.m[name]
	if !ok {
		return Profile{}, false
	}
	return p.clone(), true
}

// Lookup returns what naming needs of the outputs of the profile called
// name; it fits request.Defaults.Profile.
func (ps *Profiles) Lookup(name string) ([]request.OutputKind, bool) {
	p, ok := ps.m[name]
	if !ok {
		return nil, false
	}
	return p.OutputKinds(), true
}

// OutputKinds is what naming needs of the profile's outputs.
func (p Profile) OutputKinds() []request.OutputKind {
	kinds := make([]request.OutputKind, len(p.Outputs))
	for i, o := range p.Outputs {
		kinds[i] = request.OutputKind{Name: o.Name, Ext: o.Ext, HLS: o.Kind == KindHLS}
	}
	return kinds
}

// Names returns the profile names, sorted.
func (ps *Profiles) Names() []string {
	names := make([]string, 0, len(ps.m))
	for n := range ps.m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
