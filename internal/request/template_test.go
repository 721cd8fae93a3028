package request

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ffpipe/ffpipe/internal/failure"
)

func TestParseTemplate(t *testing.T) {
	tests := []struct {
		tmpl string
		ok   bool
	}{
		{DefaultTemplate, true},
		{"{dir}/{name}.{ext}", true},
		{"{preset}/{dir}/{stem}.{ext}", true},
		{"out/{key}.{ext}", true},
		{"{stem}-{preset}.{ext}", true},
		{"transcoded/{dir}/{stem}.{ext}", true},
		{"", false},
		{"{dir}/{ext}", false},            // does not depend on the input
		{"fixed.mp3", false},              // ditto
		{"{dir}/{stem}.{EXT}", false},     // unknown variable (case matters)
		{"{dir}/{stem}.{ext", false},      // unterminated
		{"{dir}/{stem}}.{ext}", false},    // unmatched }
		{"{dir}/{st{em}.{ext}", false},    // nested
		{"/{dir}/{stem}.{ext}", false},    // leading slash
		{"{dir}//{stem}.{ext}", false},    // empty segment
		{"../{stem}.{ext}", false},        // dot-dot segment
		{"{dir}/{stem}.{ext}.", false},    // trailing dot
		{"{dir}/{stem}.{ext}/", false},    // trailing slash
		{"{dir}/{stem}\n.{ext}", false},   // control character
		{"{dir}/{stem}.{ext}\xff", false}, // invalid UTF-8
		{strings.Repeat("x", 600) + "{stem}", false},
	}
	for _, tt := range tests {
		_, err := ParseTemplate(tt.tmpl)
		if (err == nil) != tt.ok {
			t.Errorf("ParseTemplate(%q) = %v, want ok=%v", tt.tmpl, err, tt.ok)
		}
	}
}

func TestTemplateExecute(t *testing.T) {
	key := "b0bc43d7edcd08834d321f2e38d8a6a3"
	tests := []struct {
		tmpl, blob, want string
	}{
		{DefaultTemplate, "videos/a.mp4", "videos/a.mp3"},
		{DefaultTemplate, "a.mp4", "a.mp3"},                        // no dir: no leading slash
		{DefaultTemplate, "a/b/c/d.mp4", "a/b/c/d.mp3"},            // deep dir
		{DefaultTemplate, "Videos/A.MP4", "Videos/A.MP4.mp3"},      // not the exact primary suffix: whole name kept (injective)
		{DefaultTemplate, "a.MP4.mp4", "a.MP4.mp4.mp3"},            // the rest ends in a suffix: whole name kept
		{DefaultTemplate, "a.mp4.mp4", "a.mp4.mp4.mp3"},            // same
		{DefaultTemplate, "a.b.c.mp4", "a.b.c.mp3"},                // dots in name: last extension only
		{DefaultTemplate, "v1.0/clip", "v1.0/clip.mp3"},            // dots in dir, no extension
		{DefaultTemplate, "README", "README.mp3"},                  // no extension
		{DefaultTemplate, ".hidden", ".hidden.mp3"},                // leading dot is not an extension
		{DefaultTemplate, "vidéos/日本語 🎬.mp4", "vidéos/日本語 🎬.mp3"},  // unicode
		{DefaultTemplate, "e\u0301.mp4", "e\u0301.mp3"},            // NFD kept as is
		{"{dir}/{name}.{ext}", "x/a.mp4", "x/a.mp4.mp3"},           // {name}
		{"{dir}/{name}.{ext}", "a.mp4", "a.mp4.mp3"},               // {name}, no dir
		{"out/{dir}/{stem}.{ext}", "a.mp4", "out/a.mp3"},           // empty dir inside
		{"out/{dir}/{stem}.{ext}", "x/a.mp4", "out/x/a.mp3"},       // dir inside
		{"{preset}/{key}.{ext}", "x/a.mp4", "mp3/" + key + ".mp3"}, // {preset} and {key}
		{"{dir}{stem}.{ext}", "x/a.mp4", "xa.mp3"},                 // literal concatenation
	}
	for _, tt := range tests {
		tp, err := ParseTemplate(tt.tmpl)
		if err != nil {
			t.Fatalf("ParseTemplate(%q): %v", tt.tmpl, err)
		}
		got, err := tp.Execute(Vars{Blob: tt.blob, Ext: "mp3", Preset: "mp3", Key: key})
		if err != nil {
			t.Errorf("Execute(%q, %q): %v", tt.tmpl, tt.blob, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Execute(%q, %q) = %q, want %q", tt.tmpl, tt.blob, got, tt.want)
		}
	}
}

func TestTemplateKeyNeedsKey(t *testing.T) {
	tp := MustParseTemplate("{key}.{ext}")
	if _, err := tp.Execute(Vars{Blob: "a.mp4", Ext: "mp3"}); err == nil {
		t.Errorf("Execute without key: got nil error, want one")
	}
}

func extOf(m map[string]string) func(string) (string, bool) {
	return func(p string) (string, bool) { e, ok := m[p]; return e, ok }
}

func TestWithDefaults(t *testing.T) {
	d := Defaults{
		Account:         "devstoreaccount1",
		Preset:          "mp3",
		OutputContainer: "output",
		Ext:             extOf(map[string]string{"mp3": "mp3", "aac": "m4a", "thumbnail": "jpg"}),
	}
	long := strings.Repeat("a", 1020) + ".mp4" // 1,024: valid input
	tests := []struct {
		name     string
		in       Request
		d        Defaults
		want     Request
		sentinel error
	}{
		{
			name: "minimal",
			in:   Request{Source: Source{Container: "input", Blob: "videos/a.mp4"}},
			want: Request{V: 1, Source: Source{Container: "input", Blob: "videos/a.mp4"}, Preset: "mp3", Output: Output{Container: "output", Blob: "videos/a.mp3"}},
		},
		{
			name: "preset chosen",
			in:   Request{Source: Source{Container: "input", Blob: "a.mp4"}, Preset: "thumbnail"},
			want: Request{V: 1, Source: Source{Container: "input", Blob: "a.mp4"}, Preset: "thumbnail", Output: Output{Container: "output", Blob: "a.jpg"}},
		},
		{
			name: "explicit output kept",
			in:   Request{Source: Source{Container: "input", Blob: "a.mp4"}, Preset: "aac", Output: Output{Container: "other", Blob: "x/y.m4a"}},
			want: Request{V: 1, Source: Source{Container: "input", Blob: "a.mp4"}, Preset: "aac", Output: Output{Container: "other", Blob: "x/y.m4a"}},
		},
		{
			name: "explicit output blob, default container",
			in:   Request{Source: Source{Container: "input", Blob: "a.mp4"}, Output: Output{Blob: "z.mp3"}},
			want: Request{V: 1, Source: Source{Container: "input", Blob: "a.mp4"}, Preset: "mp3", Output: Output{Container: "output", Blob: "z.mp3"}},
		},
		{
			name:     "unknown preset",
			in:       Request{Source: Source{Container: "input", Blob: "a.mp4"}, Preset: "flac"},
			sentinel: ErrUnknownPreset,
		},
		{
			name:     "1,024-character input gives a too-long output",
			in:       Request{Source: Source{Container: "input", Blob: long[:1020] + ".MP4"}}, // whole name kept: 1,024 + ".mp3"
			sentinel: ErrNameTooLong,
		},
		{
			name:     "no allowed suffix",
			in:       Request{Source: Source{Container: "input", Blob: "a.mov"}},
			sentinel: ErrBadName,
		},
		{
			name:     "output overwrites source",
			in:       Request{Source: Source{Container: "same", Blob: "a.mp3"}},
			d:        Defaults{Preset: "mp3", OutputContainer: "same", Ext: d.Ext},
			sentinel: ErrBadRequest,
		},
		{
			name:     "key template without etag",
			in:       Request{Source: Source{Container: "input", Blob: "a.mp4"}},
			d:        Defaults{Preset: "mp3", OutputContainer: "output", Ext: d.Ext, Template: MustParseTemplate("{key}.{ext}")},
			sentinel: ErrBadRequest,
		},
		{
			name: "key template",
			in:   Request{Source: Source{Container: "input", Blob: "a.mp4", ETag: "0x1"}},
			d:    Defaults{Account: "acct", Preset: "mp3", OutputContainer: "output", Ext: d.Ext, Template: MustParseTemplate("{key}.{ext}")},
			want: Request{V: 1, Source: Source{Container: "input", Blob: "a.mp4", ETag: "0x1"}, Preset: "mp3", Output: Output{Container: "output", Blob: "1c3af610c79ca8161eaa5a4177b48b9e.mp3"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dd := tt.d
			if dd.Ext == nil {
				dd = d
			}
			got, err := tt.in.WithDefaults(dd)
			if tt.sentinel != nil {
				if !errors.Is(err, tt.sentinel) {
					t.Fatalf("WithDefaults error = %v, want %v", err, tt.sentinel)
				}
				return
			}
			if err != nil {
				t.Fatalf("WithDefaults: %v", err)
			}
			tt.want.Profile = tt.want.Preset // WithDefaults names the profile in both fields
			if got != tt.want {
				t.Errorf("WithDefaults:\ngot  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// A 1,024-character name whose output would also be 1,024 characters is
// fine; one character more in the output is a name_too_long.
func TestWithDefaultsLengthBoundary(t *testing.T) {
	d := Defaults{Preset: "mp3", OutputContainer: "output", Ext: extOf(map[string]string{"mp3": "mp3", "opus": "opus"})}
	in := Request{Source: Source{Container: "input", Blob: strings.Repeat("é", 1020) + ".mp4"}}
	got, err := in.WithDefaults(d)
	if err != nil {
		t.Fatalf("1,024 → 1,024: %v", err)
	}
	if n := len([]rune(got.Output.Blob)); n != 1024 {
		t.Errorf("output length = %d, want 1024", n)
	}
	in.Preset = "opus"
	_, err = in.WithDefaults(d)
	if !errors.Is(err, ErrNameTooLong) || Code(err) != failure.NameTooLong {
		t.Errorf("1,024 → 1,025: error %v (code %q), want %v", err, Code(err), ErrNameTooLong)
	}
}

func FuzzTemplate(f *testing.F) {
	f.Add(DefaultTemplate, "videos/a.mp4")
	f.Add("{dir}/{name}.{ext}", "a")
	f.Add("out/{dir}/{stem}.{ext}", ".x")
	f.Add("{preset}/{key}.{ext}", "a/b/c.d.e")
	f.Add("{dir}{stem}.{ext}", "é/ü")
	f.Fuzz(func(t *testing.T, tmpl, blob string) {
		tp, err := ParseTemplate(tmpl)
		if err != nil {
			return
		}
		if ValidateBlob(blob) != nil {
			return
		}
		out, err := tp.Execute(Vars{Blob: blob, Ext: "mp3", Preset: "mp3", Key: Key("", "input", blob, "0x1")})
		if err != nil {
			t.Fatalf("Execute(%q, %q): %v", tmpl, blob, err)
		}
		// The output is either a valid name or rejected by ValidateBlob;
		// WithDefaults must agree and never panic.
		d := Defaults{Preset: "mp3", OutputContainer: "output", Template: tp, Ext: extOf(map[string]string{"mp3": "mp3"})}
		r, err := Request{Source: Source{Container: "input", Blob: blob, ETag: "0x1"}}.WithDefaults(d)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("WithDefaults error %v is not a bad request", err)
			}
			return
		}
		if r.Output.Blob != out {
			t.Fatalf("WithDefaults output %q, Execute %q", r.Output.Blob, out)
		}
		if err := ValidateBlob(out); err != nil {
			t.Fatalf("WithDefaults accepted invalid output %q: %v", out, err)
		}
	})
}

// FuzzOutputNameInjective: with the default template two different input
// names never share an output name (docs/reliability.md#duplicates-and-reordering, #fuzz-targets): a
// shared output would be written by two keys.
func FuzzOutputNameInjective(f *testing.F) {
	f.Add("a.mp4", "a.MP4")
	f.Add("a.mp4", "a")
	f.Add("a.MP4.mp4", "a.MP4")
	f.Add("dir/a.mp4", "dir/a.mp4.mp4")
	f.Add("x.mp4", "x.MP4.mp4")
	tp := MustParseTemplate(DefaultTemplate)
	out := func(blob string) (string, bool) {
		// The domain: names ffpipe accepts (an allowed suffix).
		if ValidateBlob(blob) != nil || !HasSuffix(blob, DefaultSuffixes) {
			return "", false
		}
		o, err := tp.Execute(Vars{Blob: blob, Ext: "mp3", Preset: "mp3"})
		return o, err == nil && ValidateBlob(o) == nil
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if a == b {
			return
		}
		oa, okA := out(a)
		ob, okB := out(b)
		if okA && okB && oa == ob {
			t.Fatalf("%q and %q both map to %q", a, b, oa)
		}
	})
}

func TestOutputName(t *testing.T) {
	for blob, want := range map[string]string{"v/a.mp4": "v/a.mp3", "a.MP4": "a.MP4.mp3", "a.mp4.mp4": "a.mp4.mp4.mp3"} {
		if got := OutputName(blob, "mp3"); got != want {
			t.Errorf("OutputName(%q) = %q, want %q", blob, got, want)
		}
	}
}

func TestOutputsOfProfiles(t *testing.T) {
	profiles := map[string][]OutputKind{
		"mp3":     {{Name: "mp3", Ext: "mp3"}},
		"podcast": {{Name: "mp3", Ext: "mp3"}, {Name: "opus", Ext: "opus"}, {Name: "thumbnail", Ext: "jpg"}},
		"web":     {{Name: "mp4-720", Ext: "mp4"}, {Name: "thumbnail", Ext: "jpg"}},
		"hls":     {{Name: "hls", Ext: "m3u8", HLS: true}},
	}
	d := Defaults{Preset: "mp3", OutputContainer: "output", Profile: func(n string) ([]OutputKind, bool) { k, ok := profiles[n]; return k, ok }}
	tests := []struct {
		name     string
		in       Request
		d        *Defaults
		want     []OutputBlob
		sentinel error
	}{
		{name: "default", in: Request{Source: Source{Container: "input", Blob: "v/a.mp4"}}, want: []OutputBlob{{Name: "mp3", Blob: "v/a.mp3"}}},
		{name: "podcast", in: Request{Source: Source{Container: "input", Blob: "v/a.mp4"}, Profile: "podcast"},
			want: []OutputBlob{{Name: "mp3", Blob: "v/a.mp3"}, {Name: "opus", Blob: "v/a.opus"}, {Name: "thumbnail", Blob: "v/a.jpg"}}},
		{name: "web by preset field", in: Request{Source: Source{Container: "input", Blob: "a.mp4"}, Preset: "web"},
			want: []OutputBlob{{Name: "mp4-720", Blob: "a.mp4"}, {Name: "thumbnail", Blob: "a.jpg"}}},
		{name: "hls folder", in: Request{Source: Source{Container: "input", Blob: "v/a.mp4"}, Profile: "hls"},
			want: []OutputBlob{{Name: "hls", Blob: "v/a/hls/master.m3u8", Folder: "v/a/hls"}}},
		{name: "hls at the root", in: Request{Source: Source{Container: "input", Blob: "a.mp4"}, Profile: "hls"},
			want: []OutputBlob{{Name: "hls", Blob: "a/hls/master.m3u8", Folder: "a/hls"}}},
		{name: "retry carries the computed output", in: Request{Source: Source{Container: "input", Blob: "a.mp4"}, Profile: "podcast", Output: Output{Blob: "a.mp3"}},
			want: []OutputBlob{{Name: "mp3", Blob: "a.mp3"}, {Name: "opus", Blob: "a.opus"}, {Name: "thumbnail", Blob: "a.jpg"}}},
		{name: "one-output profile keeps a chosen name", in: Request{Source: Source{Container: "input", Blob: "a.mp4"}, Profile: "mp3", Output: Output{Blob: "x/y.mp3"}},
			want: []OutputBlob{{Name: "mp3", Blob: "x/y.mp3"}}},
		{name: "chosen name for several outputs", in: Request{Source: Source{Container: "input", Blob: "a.mp4"}, Profile: "podcast", Output: Output{Blob: "x.mp3"}}, sentinel: ErrBadRequest},
		{name: "chosen name for hls", in: Request{Source: Source{Container: "input", Blob: "a.mp4"}, Profile: "hls", Output: Output{Blob: "x.m3u8"}}, sentinel: ErrBadRequest},
		{name: "unknown profile", in: Request{Source: Source{Container: "input", Blob: "a.mp4"}, Profile: "nope"}, sentinel: ErrUnknownProfile},
		{name: "unknown preset field", in: Request{Source: Source{Container: "input", Blob: "a.mp4"}, Preset: "nope"}, sentinel: ErrUnknownPreset},
		{name: "unknown default (metadata or route)", in: Request{Source: Source{Container: "input", Blob: "a.mp4"}}, d: &Defaults{Preset: "nope", OutputContainer: "output", Profile: d.Profile}, sentinel: ErrUnknownProfile},
		{name: "profile and preset differ", in: Request{Source: Source{Container: "input", Blob: "a.mp4"}, Profile: "web", Preset: "mp3"}, sentinel: ErrBadRequest},
		{name: "names collide", in: Request{Source: Source{Container: "input", Blob: "a.mp4"}, Profile: "podcast"},
			d: &Defaults{OutputContainer: "output", Profile: d.Profile, Template: MustParseTemplate("{dir}/{stem}.out")}, sentinel: ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dd := d
			if tt.d != nil {
				dd = *tt.d
			}
			got, err := tt.in.Outputs(dd)
			if tt.sentinel != nil {
				if !errors.Is(err, tt.sentinel) {
					t.Fatalf("Outputs error = %v, want %v", err, tt.sentinel)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Outputs:\ngot  %+v\nwant %+v", got, tt.want)
			}
			full, err := tt.in.WithDefaults(dd)
			if err != nil || full.Output.Blob != tt.want[0].Blob || full.Profile == "" || full.Profile != full.Preset {
				t.Errorf("WithDefaults = %+v, %v; want output %s and the profile named", full, err, tt.want[0].Blob)
			}
		})
	}
}
