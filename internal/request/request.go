// Package request is the unit of work of ffpipe: the versioned queue
// message that asks for one blob to be transcoded with one preset, its
// identity (Key) and its validation.
//
// A request arrives from OnBlobCreated (complete but for the output) or
// from any user (only source.container and source.blob are required).
// Decode parses and validates the wire form; WithDefaults fills in the
// preset and the output from configuration; Key names the work.
package request

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"unicode/utf8"

	"github.com/ffpipe/ffpipe/internal/etags"
)

// Version is the message version this code writes and understands.
const Version = 1

// MaxBodyBytes caps an encoded request. A valid request is well under
// 8 KiB (two 1,024-character names plus small fields); the cap leaves
// room for forward-compatible additions.
const MaxBodyBytes = 64 << 10

// Limits on the small fields.
const (
	MaxETagLen          = 256
	MaxCorrelationIDLen = 128
	MaxPresetNameLen    = 32
)

// Request is the queue message body:
//
//	{"v":1,"source":{"container":"input","blob":"videos/a.mp4","etag":"0x8DC...","size":1234},
//	 "profile":"mp3","output":{"container":"output","blob":"videos/a.mp3"},"correlationId":"..."}
//
// "profile" names a media profile; "preset", its older name, is still
// accepted (every preset is a one-output profile). WithDefaults sets both
// to the profile chosen.
type Request struct {
	V             int    `json:"v"`
	Source        Source `json:"source"`
	Profile       string `json:"profile,omitempty"`
	Preset        string `json:"preset,omitempty"`
	Output        Output `json:"output,omitzero"`
	CorrelationID string `json:"correlationId,omitempty"`
}

// Source is the input blob. ETag and Size may be left empty by users; the
// dispatcher resolves them from storage. ETag is kept as sent; Key
// normalises it.
type Source struct {
	Container string `json:"container"`
	Blob      string `json:"blob"`
	ETag      string `json:"etag,omitempty"`
	Size      int64  `json:"size,omitempty"`
}

// Output is where the result goes. Empty fields are filled by WithDefaults.
type Output struct {
	Container string `json:"container,omitempty"`
	Blob      string `json:"blob,omitempty"`
}

// wire mirrors Request with pointers where "absent" and "zero" differ.
type wire struct {
	V      *int `json:"v"`
	Source struct {
		Container string `json:"container"`
		Blob      string `json:"blob"`
		ETag      string `json:"etag"`
		Size      *int64 `json:"size"`
	} `json:"source"`
	Profile       string `json:"profile"`
	Preset        string `json:"preset"`
	Output        Output `json:"output"`
	CorrelationID string `json:"correlationId"`
}

// Decode parses and validates a message body. Unknown fields are ignored
// (forward compatibility); wrong types, trailing data, a missing or invalid
// source, and a version other than 1 are rejected. A missing "v" means 1,
// so users may send just {"source":{"container":"input","blob":"a.mp4"}}.
// Every error is a *BadRequestError: the message can never succeed.
func Decode(body []byte) (Request, error) {
	if len(body) > MaxBodyBytes {
		return Request{}, &BadRequestError{Reason: fmt.Sprintf("message is %d bytes, at most %d allowed", len(body), MaxBodyBytes), Err: ErrTooLarge}
	}
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")) // a UTF-8 BOM from some senders
	if !utf8.Valid(body) {
		return Request{}, bad("", "message is not valid UTF-8")
	}
	var w wire
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&w); err != nil {
		// A newer message may change shapes; report its version, not the shape.
		var vOnly struct {
			V int `json:"v"`
		}
		if json.Unmarshal(body, &vOnly) == nil && vOnly.V > Version {
			return Request{}, versionError(vOnly.V)
		}
		return Request{}, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Request{}, bad("", "trailing data after the JSON object")
	}
	r := Request{
		V:             Version,
		Profile:       w.Profile,
		Preset:        w.Preset,
		Output:        w.Output,
		CorrelationID: w.CorrelationID,
		Source: Source{
			Container: w.Source.Container,
			Blob:      w.Source.Blob,
			ETag:      w.Source.ETag,
		},
	}
	if w.V != nil {
		r.V = *w.V
	}
	if w.Source.Size != nil {
		r.Source.Size = *w.Source.Size
		if r.Source.Size < 0 {
			return Request{}, bad("source.size", "must not be negative")
		}
	}
	if err := r.Validate(); err != nil {
		return Request{}, err
	}
	return r, nil
}

func versionError(v int) error {
	return &BadRequestError{Field: "v", Reason: fmt.Sprintf("version %d is newer than this service understands (%d)", v, Version), Err: ErrUnsupportedVersion}
}

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return bad("", "the message must be a JSON object, got %s", te.Value)
		}
		return bad(te.Field, "wrong JSON type %s, want %s", te.Value, te.Type)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return bad("", "invalid JSON at offset %d: %v", se.Offset, se)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return bad("", "empty or truncated JSON")
	}
	return bad("", "invalid JSON: %v", err)
}

// Encode returns the JSON form of r (compact, with "v" set).
func (r Request) Encode() ([]byte, error) {
	if r.V == 0 {
		r.V = Version
	}
	return json.Marshal(r)
}

// Key returns the request's key for the given storage account. The eTag
// must be known (resolved from storage); Key does not check that.
func (r Request) Key(account string) string {
	return Key(account, r.Source.Container, r.Source.Blob, r.Source.ETag)
}

// Validate checks every field that is present. It does not require the
// eTag, size, preset or output, which WithDefaults and the dispatcher fill.
func (r Request) Validate() error {
	switch {
	case r.V < 1:
		return bad("v", "must be %d, got %d", Version, r.V)
	case r.V > Version:
		return versionError(r.V)
	}
	if err := ValidateContainer(r.Source.Container); err != nil {
		return bad("source.container", "%v", err)
	}
	if err := validateBlobField("source.blob", r.Source.Blob); err != nil {
		return err
	}
	if err := validateETag(r.Source.ETag); err != nil {
		return err
	}
	if r.Source.Size < 0 {
		return bad("source.size", "must not be negative")
	}
	if r.Preset != "" && !ValidPresetName(r.Preset) {
		return bad("preset", "must match [a-z0-9-]{1,%d}, got %s", MaxPresetNameLen, quoteExcerpt(r.Preset))
	}
	if r.Profile != "" && !ValidPresetName(r.Profile) {
		return bad("profile", "must match [a-z0-9-]{1,%d}, got %s", MaxPresetNameLen, quoteExcerpt(r.Profile))
	}
	if r.Profile != "" && r.Preset != "" && r.Profile != r.Preset {
		return bad("profile", "profile %s and preset %s differ; give one of them", quoteExcerpt(r.Profile), quoteExcerpt(r.Preset))
	}
	if r.Output.Container != "" {
		if err := ValidateContainer(r.Output.Container); err != nil {
			return bad("output.container", "%v", err)
		}
	}
	if r.Output.Blob != "" {
		if err := validateBlobField("output.blob", r.Output.Blob); err != nil {
			return err
		}
	}
	if r.Output.Container != "" && r.Output.Container == r.Source.Container && r.Output.Blob == r.Source.Blob {
		return bad("output.blob", "the output must not overwrite the source")
	}
	switch {
	case r.CorrelationID == "" || ValidCorrelationID(r.CorrelationID):
	case len(r.CorrelationID) > MaxCorrelationIDLen:
		return bad("correlationId", "longer than %d bytes", MaxCorrelationIDLen)
	default:
		return bad("correlationId", "must be printable ASCII without spaces")
	}
	return nil
}

// ValidCorrelationID reports whether s may be a request's correlation id:
// 1 to MaxCorrelationIDLen bytes of printable ASCII without spaces. Ids
// taken from a message's properties are checked with it too, so that no
// unchecked text reaches a record or a log line.
func ValidCorrelationID(s string) bool {
	if s == "" || len(s) > MaxCorrelationIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

func validateBlobField(field, name string) error {
	if name == "" {
		return bad(field, "blob name is empty")
	}
	if err := ValidateBlob(name); err != nil {
		var le *lengthError
		if errors.As(err, &le) {
			return &BadRequestError{Field: field, Reason: err.Error(), Err: ErrNameTooLong}
		}
		return &BadRequestError{Field: field, Reason: err.Error(), Err: ErrBadName}
	}
	return nil
}

func validateETag(etag string) error {
	if etag == "" {
		return nil
	}
	e := etags.Normalize(etag)
	if e == "" || len(e) > MaxETagLen {
		return bad("source.etag", "must be 1-%d characters", MaxETagLen)
	}
	for i := 0; i < len(e); i++ {
		if c := e[i]; c < 0x21 || c > 0x7e || c == '"' {
			return bad("source.etag", "must be printable ASCII without quotes inside")
		}
	}
	return nil
}

// ValidPresetName reports whether s is a valid preset or profile name: 1
// to MaxPresetNameLen of [a-z0-9-]. It is the one rule for those names:
// internal/presets checks configured presets and profiles with it, and
// Validate checks a request's preset and profile.
func ValidPresetName(s string) bool {
	if s == "" || len(s) > MaxPresetNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Named returns the profile the request names ("profile", else "preset"),
// or "" when it names none.
func (r Request) Named() string {
	if r.Profile != "" {
		return r.Profile
	}
	return r.Preset
}

// Defaults are the configured values WithDefaults fills in.
type Defaults struct {
	// Account is the storage account name; needed only for a {key} template.
	Account string
	// Preset is the profile used when the request names none (e.g. "mp3").
	// The dispatcher sets it per request from the upload's metadata or a
	// route before calling WithDefaults.
	Preset string
	// Profile returns the outputs of a configured profile, and false for
	// an unknown one. When nil, Ext makes every preset a one-output
	// profile.
	Profile func(name string) ([]OutputKind, bool)
	// OutputContainer is used when the request names none (e.g. "output").
	OutputContainer string
	// Template builds the output blob name; nil means DefaultTemplate.
	Template *Template
	// Ext returns the output extension of a configured preset, and false
	// for an unknown preset (presets.Set.Ext fits).
	Ext func(preset string) (ext string, ok bool)
	// Suffixes are the allowed input suffixes (lower case, primary first;
	// nil means DefaultSuffixes). A source blob must end in one of them.
	Suffixes []string
}

var defaultTemplate = MustParseTemplate(DefaultTemplate)

// WithDefaults returns r completed from d: version, profile (Profile and
// Preset both name it), output container and output blob (the first
// output's name, from the template), then validates the result. An unknown
// profile or preset, an output name over 1,024 characters, an output equal
// to the source, or an output.blob given for a profile with several
// outputs is a *BadRequestError. For a {key} template the eTag must
// already be set. Outputs gives every output's name.
func (r Request) WithDefaults(d Defaults) (Request, error) {
	r, _, err := r.withOutputs(d)
	return r, err
}

// Outputs returns the names of every output of a request completed by
// WithDefaults with the same d, in the profile's order.
func (r Request) Outputs(d Defaults) ([]OutputBlob, error) {
	_, outs, err := r.withOutputs(d)
	return outs, err
}

func (r Request) withOutputs(d Defaults) (Request, []OutputBlob, error) {
	r, kinds, err := r.withProfile(d)
	if err != nil {
		return Request{}, nil, err
	}
	if r.Output.Container == "" {
		r.Output.Container = d.OutputContainer
	}
	if r.Output.Container == "" {
		return Request{}, nil, bad("output.container", "no output container given and no default configured")
	}
	outs, err := r.outputNames(d, kinds)
	if err != nil {
		return Request{}, nil, err
	}
	switch {
	case r.Output.Blob == "":
		r.Output.Blob = outs[0].Blob
	case len(kinds) == 1 && !kinds[0].HLS:
		outs[0].Blob = r.Output.Blob // chosen by the sender, as before profiles
	case r.Output.Blob != outs[0].Blob:
		return Request{}, nil, bad("output.blob", "can only be chosen for a profile with one file output; profile %s names its outputs from FFPIPE_OUTPUT_TEMPLATE", quoteExcerpt(r.Profile))
	}
	if err := r.Validate(); err != nil {
		return Request{}, nil, err
	}
	seen := map[string]bool{}
	for _, o := range outs {
		if err := validateBlobField("output.blob", o.Blob); err != nil {
			return Request{}, nil, err
		}
		if r.Output.Container == r.Source.Container && o.Blob == r.Source.Blob {
			return Request{}, nil, bad("output.blob", "the output must not overwrite the source")
		}
		if seen[o.Blob] {
			return Request{}, nil, bad("output.blob", "two outputs of profile %s get the same name %s (FFPIPE_OUTPUT_TEMPLATE)", quoteExcerpt(r.Profile), quoteExcerpt(o.Blob))
		}
		seen[o.Blob] = true
	}
	return r, outs, nil
}

// withProfile checks the source name, picks the profile and looks it up.
func (r Request) withProfile(d Defaults) (Request, []OutputKind, error) {
	if r.V == 0 {
		r.V = Version
	}
	if err := r.Validate(); err != nil {
		return Request{}, nil, err
	}
	suffixes := d.Suffixes
	if len(suffixes) == 0 {
		suffixes = DefaultSuffixes
	}
	if !HasSuffix(r.Source.Blob, suffixes) {
		return Request{}, nil, &BadRequestError{Field: "source.blob", Err: ErrBadName,
			Reason: fmt.Sprintf("the name must end in one of %s (FFPIPE_ALLOWED_SUFFIXES)", strings.Join(suffixes, ", "))}
	}
	name, field, sentinel := r.Named(), "profile", ErrUnknownProfile
	if r.Profile == "" && r.Preset != "" {
		field, sentinel = "preset", ErrUnknownPreset
	}
	if name == "" {
		name = d.Preset
	}
	if name == "" {
		return Request{}, nil, bad("profile", "no profile given and no default configured")
	}
	lookup := d.Profile
	if lookup == nil && d.Ext != nil {
		lookup = func(n string) ([]OutputKind, bool) {
			ext, ok := d.Ext(n)
			return []OutputKind{{Name: n, Ext: ext}}, ok
		}
	}
	if lookup == nil {
		return Request{}, nil, fmt.Errorf("fill request defaults: no profile lookup configured")
	}
	kinds, ok := lookup(name)
	if !ok || len(kinds) == 0 {
		return Request{}, nil, &BadRequestError{Field: field, Reason: fmt.Sprintf("%s %s is not configured", field, quoteExcerpt(name)), Err: sentinel}
	}
	r.Profile, r.Preset = name, name
	return r, kinds, nil
}

// OutputKind is what naming needs of one output of a profile.
type OutputKind struct {
	// Name is the output's name within the profile (the template's {preset}).
	Name string
	// Ext is its extension (the template's {ext}).
	Ext string
	// HLS outputs are a folder: the template's name without ".m3u8", then
	// "/hls/master.m3u8" and the rungs' playlists and segments beside it.
	HLS bool
}

// OutputBlob is the blob name of one output.
type OutputBlob struct {
	// Name is the output's name within the profile.
	Name string
	// Blob is the output blob (an HLS output's master playlist).
	Blob string
	// Folder is an HLS output's folder (Blob is Folder + "/master.m3u8");
	// "" for a file output.
	Folder string
}

// MetadataProfile is the blob metadata key an upload names its profile
// with (`ffpipe upload --profile`). Metadata keys are case-insensitive.
const MetadataProfile = "ffpipe_profile"

// HLSMaster is the master playlist's name in an HLS output's folder.
const HLSMaster = "master.m3u8"

func (r Request) outputNames(d Defaults, kinds []OutputKind) ([]OutputBlob, error) {
	t := d.Template
	if t == nil {
		t = defaultTemplate
	}
	outs := make([]OutputBlob, len(kinds))
	for i, k := range kinds {
		v := Vars{Blob: r.Source.Blob, Ext: k.Ext, Preset: k.Name, Suffixes: d.Suffixes}
		if t.Uses("key") {
			if r.Source.ETag == "" {
				return nil, bad("source.etag", "the output template uses {key}, which needs the eTag")
			}
			v.Key = r.Key(d.Account)
		}
		out, err := t.Execute(v)
		if err != nil {
			return nil, fmt.Errorf("fill request defaults: %w", err)
		}
		outs[i] = OutputBlob{Name: k.Name, Blob: out}
		if k.HLS {
			folder := strings.TrimSuffix(out, "."+k.Ext) + "/hls"
			outs[i] = OutputBlob{Name: k.Name, Blob: folder + "/" + HLSMaster, Folder: folder}
		}
	}
	return outs, nil
}

// String returns a short, log-safe description (names escaped and cut).
func (r Request) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s", logExcerpt(r.Source.Container), quoteExcerpt(r.Source.Blob))
	if n := r.Named(); n != "" {
		fmt.Fprintf(&b, " preset=%s", quoteExcerpt(n))
	}
	return b.String()
}

// LogValue makes slog print a request as a group with escaped, shortened
// names, so hostile blob names cannot forge log lines.
func (r Request) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("container", r.Source.Container),
		slog.String("blob", logExcerpt(r.Source.Blob)),
	}
	if r.Source.ETag != "" {
		attrs = append(attrs, slog.String("etag", etags.Normalize(r.Source.ETag)))
	}
	if n := r.Named(); n != "" {
		attrs = append(attrs, slog.String("preset", logExcerpt(n)))
	}
	if r.Output.Blob != "" {
		attrs = append(attrs, slog.String("output", r.Output.Container+"/"+logExcerpt(r.Output.Blob)))
	}
	if r.CorrelationID != "" {
		attrs = append(attrs, slog.String("correlationId", logExcerpt(r.CorrelationID)))
	}
	return slog.GroupValue(attrs...)
}
