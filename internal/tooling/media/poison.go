package media

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ffpipe/ffpipe/internal/failure"
)

// Canary is the file the shell-metacharacter names try to create
// ("$(touch ffpipe-canary)…"). After a run, no file of this name may exist
// in any task working directory or the harness's cwd: its presence means a
// blob name reached a shell.
const Canary = "ffpipe-canary"

// Case is one poison or edge-case input.
type Case struct {
	// ID is a stable, ASCII identifier ("truncated-50"), the key of
	// PoisonOptions.Expect and safe for logs and file names.
	ID string
	// Name is the blob name to upload as (PoisonOptions.Prefix included).
	// Some names are hostile on purpose; never put them in a shell string.
	Name string
	// Path is the local file with the content. Several cases (all the name
	// cases) share one file: treat Path as read-only.
	Path string
	// Size of the file in bytes.
	Size int64
	// Expect is what the pipeline must do with it.
	Expect Expect
	// AudioDuration is the playable duration of the first audio track, what
	// VerifyAudio should compare a Done output with. Set for every case whose
	// file is complete media with audio (whatever Expect says), 0 otherwise.
	AudioDuration time.Duration
	// Note says what the case exercises and why it expects what it does.
	Note string
}

// PoisonOptions shape PoisonSet. The zero value is usable.
type PoisonOptions struct {
	// Base is the healthy clip the name cases share and the content cases
	// are cut from. Default: 2 s, 160×120, 10 fps, H.264 + stereo AAC.
	// Base.CacheDir caches every generated clip (all cases are
	// deterministic).
	Base ClipSpec
	// Prefix starts every blob name, e.g. "poison/". It counts against the
	// 1,024-character and 254-segment limits.
	Prefix string
	// AllowedSuffixes mirrors FFPIPE_ALLOWED_SUFFIXES (case-insensitive).
	// Default [".mp4"]. Names without one are expected Ignored.
	AllowedSuffixes []string
	// OutputExt is the preset's output extension, used to predict whether
	// the output name ({dir}/{stem}.{ext}) exceeds 1,024 characters.
	// Default "mp3".
	OutputExt string
	// MaxInputBytes mirrors FFPIPE_MAX_INPUT_BYTES. When > 0 the set
	// includes size-at-cap (Done) and size-above-cap (Rejected) clips of
	// exactly cap and cap+1 bytes, so configure a small cap (e.g. 4 MiB)
	// for chaos runs. 0 omits both.
	MaxInputBytes int64
	// LongDuration is the length of the very-long case (default 20 min:
	// 64×64 at 1 fps with 8 kHz mono noise, ~4.5 MB, ~2 s to make).
	// Negative omits it.
	LongDuration time.Duration
	// CanaryURL is the http address the playlist cases point at. Default
	// "http://127.0.0.1:9/ffpipe-canary" (discard port on loopback). Run a
	// listener there to prove no connection is attempted.
	CanaryURL string
	// CanaryFile is the local file the playlist cases try to read. Default
	// "/etc/passwd".
	CanaryFile string
	// Expect overrides the expectation of cases by ID, for pipeline choices
	// that differ from the defaults documented on PoisonSet. An ID that is
	// not in the returned set (a typo, or a case these options omit) is an
	// error wrapping ErrBadSpec.
	Expect map[string]Expect
}

func (o PoisonOptions) withDefaults() PoisonOptions {
	if o.Base.Duration <= 0 {
		o.Base.Duration = 2 * time.Second
	}
	if o.Base.Width <= 0 || o.Base.Height <= 0 {
		o.Base.Width, o.Base.Height = 160, 120
	}
	if o.Base.FPS <= 0 {
		o.Base.FPS = 10
	}
	o.Base.NoAudio, o.Base.NoVideo, o.Base.AudioTracks, o.Base.MoovAtEnd, o.Base.Container = false, false, 1, false, ""
	if len(o.AllowedSuffixes) == 0 {
		o.AllowedSuffixes = []string{".mp4"}
	}
	if o.OutputExt == "" {
		o.OutputExt = "mp3"
	}
	if o.LongDuration == 0 {
		o.LongDuration = 20 * time.Minute
	}
	if o.CanaryURL == "" {
		o.CanaryURL = "http://127.0.0.1:9/" + Canary
	}
	if o.CanaryFile == "" {
		o.CanaryFile = "/etc/passwd"
	}
	return o
}

// allowed reports whether name ends in an allowed suffix (case-insensitive).
func (o PoisonOptions) allowed(name string) bool {
	lower := strings.ToLower(name)
	for _, s := range o.AllowedSuffixes {
		if s != "" && strings.HasSuffix(lower, strings.ToLower(s)) {
			return true
		}
	}
	return false
}

// outputName predicts the default output template {dir}/{stem}.{ext}.
func (o PoisonOptions) outputName(name string) string {
	return strings.TrimSuffix(name, path.Ext(name)) + "." + o.OutputExt
}

// PoisonSet writes the edge-case inputs of docs/reliability.md#poison-and-edge-case-inputs to
// dir and returns them with the outcome the pipeline must reach. Content
// cases get their own file (<ID>.mp4 in dir); name cases share base.mp4.
//
// Default expectations and the assumptions behind them (override with
// PoisonOptions.Expect when the pipeline decides otherwise):
//
//   - Valid media under any valid blob name converts (Done): names are
//     opaque data that never reach argv, a shell or a local path
//     (ARCHITECTURE.md "The Batch task"). This covers shell
//     metacharacters, option-like names, URL-special characters, unicode
//     (NFC and NFD spellings of one name are two blobs with two outputs),
//     bidi and zero-width characters, names differing only by case, a
//     1,024-character name (a segment far beyond NAME_MAX), 254 segments,
//     and an upper-case ".MP4" suffix (suffixes are case-insensitive).
//   - Names with "." or ".." segments ("./x.mp4", "a/../b.mp4", …) and a
//     literal "%2e%2e" segment: Done, or a failure record with "bad_name"
//     (docs/reliability.md#poison-and-edge-case-inputs allows either; the pipeline may refuse them at OnBlobCreated or
//     Dispatch). The azblob SDK and Azurite keep every name in the set
//     verbatim, dot segments included (TestPoisonNamesSurviveAzurite);
//     whether real Azure Storage folds dot segments is UNCONFIRMED.
//   - A name whose output name would pass 1,024 characters (only when
//     OutputExt is longer than "mp4"): failed or rejected, "name_too_long".
//   - Zero bytes: Rejected "empty"; cap+1 bytes: Rejected "too_large";
//     exactly cap bytes: Done (ARCHITECTURE.md: size > 0 and ≤ cap).
//   - Truncated MP4s: Failed "decode_error". Note: ffmpeg 5.1 exits 0 with
//     -xerror on a faststart MP4 cut short (it logs "partial file" and
//     writes a shorter output), so the pipeline must detect that itself
//     (stderr, or output duration against the source's). The moov-missing
//     cut fails like non-media ("moov atom not found"), so any reason.
//   - Random bytes, text, HTML, an HLS playlist and an ffconcat script
//     named .mp4: Failed "not_media" (the pinned mov demuxer rejects them;
//     the playlists must cause no read of CanaryFile and no connection to
//     CanaryURL).
//   - Video without audio: Failed "no_audio" (-map 0:a:0 matches nothing).
//   - Three audio tracks: Done from track 0 (the others are half as long,
//     so AudioDuration tells the tracks apart).
//   - Video in MagicYUV or HEVC plus AAC: Done (only audio is decoded).
//   - AC-3 audio: Done, or Failed with "codec" in the reason, depending on
//     the preset's codec whitelist.
//   - Very long (LongDuration): Done within the default 30 min wall clock.
//   - ".mov", ".mp4.txt" and no suffix: Ignored.
func PoisonSet(ctx context.Context, dir string, opts PoisonOptions) ([]Case, error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("poison set: %w", err)
	}
	b := &poisonBuilder{ctx: ctx, dir: dir, opts: opts}
	cases, err := b.build()
	if err != nil {
		return nil, fmt.Errorf("poison set: %w", err)
	}
	used := 0
	for i := range cases {
		c := &cases[i]
		if e, ok := opts.Expect[c.ID]; ok {
			c.Expect = e
			used++
		}
		st, err := os.Stat(c.Path)
		if err != nil {
			return nil, fmt.Errorf("poison set %s: %w", c.ID, err)
		}
		c.Size = st.Size()
		if err := ValidBlobName(c.Name); err != nil {
			return nil, fmt.Errorf("poison set %s: %w", c.ID, err)
		}
	}
	if used != len(opts.Expect) {
		var unknown []string
		for id := range opts.Expect {
			if !slices.ContainsFunc(cases, func(c Case) bool { return c.ID == id }) {
				unknown = append(unknown, id)
			}
		}
		slices.Sort(unknown)
		return nil, fmt.Errorf("poison set: %w: Expect names unknown or omitted cases %q", ErrBadSpec, unknown)
	}
	return cases, nil
}

type poisonBuilder struct {
	ctx  context.Context
	dir  string
	opts PoisonOptions

	cases   []Case
	base    string
	baseDur time.Duration
}

func (b *poisonBuilder) add(c Case) { b.cases = append(b.cases, c) }

// clip generates spec as <id>.mp4 and returns its path and first-track duration.
func (b *poisonBuilder) clip(id string, spec ClipSpec) (string, time.Duration, error) {
	spec.Name = id + ".mp4"
	p, err := Generate(b.ctx, b.dir, spec)
	if err != nil {
		return "", 0, err
	}
	if spec.NoAudio {
		return p, 0, nil
	}
	d, err := ExpectedAudioDuration(b.ctx, p)
	return p, d, err
}

// write puts data in <id>.mp4 and returns the path.
func (b *poisonBuilder) write(id string, data []byte) (string, error) {
	p := filepath.Join(b.dir, id+".mp4")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return "", err
	}
	return p, nil
}

func (b *poisonBuilder) build() ([]Case, error) {
	var err error
	if b.base, b.baseDur, err = b.clip("base", b.opts.Base); err != nil {
		return nil, err
	}
	steps := []func() error{b.sizeCases, b.contentCases, b.variantCases, b.nameCases}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return b.cases, nil
}

func (b *poisonBuilder) name(s string) string { return b.opts.Prefix + s }

// contentCases: files that are not (complete) media.
func (b *poisonBuilder) contentCases() error {
	p := b.opts
	baseBytes, err := os.ReadFile(b.base)
	if err != nil {
		return err
	}
	add := func(id string, data []byte, e Expect, note string) error {
		path, err := b.write(id, data)
		if err != nil {
			return err
		}
		b.add(Case{ID: id, Name: b.name(id + ".mp4"), Path: path, Expect: e, Note: note})
		return nil
	}
	if err := add("empty", nil, Expect{Rejected, failure.Empty},
		"zero bytes: OnBlobCreated rejects on contentLength 0, no message, no task"); err != nil {
		return err
	}
	for _, pct := range []int{10, 50, 99} {
		if err := add(fmt.Sprintf("truncated-%d", pct), baseBytes[:len(baseBytes)*pct/100], Expect{Failed, failure.DecodeError},
			fmt.Sprintf("faststart MP4 cut at %d%%: moov intact, media data short; ffmpeg 5.1 exits 0 on this, the pipeline must notice", pct)); err != nil {
			return err
		}
	}
	moovEnd := p.Base
	moovEnd.MoovAtEnd = true
	mePath, _, err := b.clip("moov-at-end-full", moovEnd)
	if err != nil {
		return err
	}
	meBytes, err := os.ReadFile(mePath)
	if err != nil {
		return err
	}
	if err := os.Remove(mePath); err != nil {
		return err
	}
	if err := add("truncated-moov-missing", meBytes[:len(meBytes)/2], Expect{Failed, ""},
		"moov-at-end MP4 cut at 50%: no index at all, fails like non-media"); err != nil {
		return err
	}
	rnd := make([]byte, 64<<10)
	r := rand.New(rand.NewPCG(6, 7))
	for i := range rnd {
		rnd[i] = byte(r.Uint32())
	}
	if err := add("random-bytes", rnd, Expect{Failed, failure.NotMedia}, "64 KiB of seeded random bytes"); err != nil {
		return err
	}
	if err := add("text", []byte("this is not a video\n"), Expect{Failed, failure.NotMedia}, "plain text"); err != nil {
		return err
	}
	if err := add("html", []byte("<!doctype html><html><body><video src=\"x.mp4\"></video></body></html>\n"),
		Expect{Failed, failure.NotMedia}, "an HTML page"); err != nil {
		return err
	}
	hls := fmt.Sprintf("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"+
		"#EXTINF:10.0,\nfile://%s\n#EXTINF:10.0,\n%s.ts\n#EXT-X-ENDLIST\n", p.CanaryFile, p.CanaryURL)
	if err := add("hls-playlist", []byte(hls), Expect{Failed, failure.NotMedia},
		"HLS playlist naming a local file and a loopback URL (the 2016 attack shape): no read, no connection"); err != nil {
		return err
	}
	concat := fmt.Sprintf("ffconcat version 1.0\nfile 'file:%s'\nfile '%s.mp4'\n", p.CanaryFile, p.CanaryURL)
	return add("ffconcat-script", []byte(concat), Expect{Failed, failure.NotMedia},
		"ffconcat script naming a local file and a loopback URL: no read, no connection")
}

// variantCases: real media of unusual shape.
func (b *poisonBuilder) variantCases() error {
	p := b.opts
	with := func(f func(*ClipSpec)) ClipSpec { s := p.Base; f(&s); return s }
	cases := []struct {
		id   string
		spec ClipSpec
		e    Expect
		note string
	}{
		{"plain", p.Base, Expect{Done, ""}, "control: the healthy base clip under a plain name"},
		{"no-audio", with(func(s *ClipSpec) { s.NoAudio = true }), Expect{Failed, failure.NoAudio}, "video without an audio stream: -map 0:a:0 matches nothing"},
		{"audio-only", with(func(s *ClipSpec) { s.NoVideo = true }), Expect{Done, ""}, "MP4 with only an AAC stream"},
		{"multi-audio", with(func(s *ClipSpec) { s.AudioTracks = 3 }), Expect{Done, ""}, "three audio tracks; output must come from track 0 (the others are half as long)"},
		{"video-magicyuv", with(func(s *ClipSpec) { s.VideoCodec, s.Container = "magicyuv", "mov" }), Expect{Done, ""}, "non-whitelisted video codec (MagicYUV) + AAC: audio converts, no video decoder needed"},
		{"video-hevc", with(func(s *ClipSpec) { s.VideoCodec = "libx265" }), Expect{Done, ""}, "HEVC video + AAC: audio converts"},
		{"audio-ac3", with(func(s *ClipSpec) { s.AudioCodec = "ac3"; s.AudioBitrate = "96k" }), Expect{Done | Failed, "codec"}, "AC-3 audio: converts, or codec_not_allowed when the preset's whitelist excludes it"},
	}
	if p.LongDuration > 0 {
		long := ClipSpec{CacheDir: p.Base.CacheDir, Duration: p.LongDuration, Width: 64, Height: 64, FPS: 1,
			SampleRate: 8000, Channels: 1, AudioBitrate: "16k", Noise: true}
		cases = append(cases, struct {
			id   string
			spec ClipSpec
			e    Expect
			note string
		}{"very-long", long, Expect{Done, ""},
			fmt.Sprintf("%v of low-bitrate audio: converts within the task wall clock", p.LongDuration)})
	}
	// Encode in parallel (bounded by cores), add in a fixed order.
	out := make([]Case, len(cases))
	errs := make([]error, len(cases))
	sem := make(chan struct{}, runtime.NumCPU())
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			path, d, err := b.clip(c.id, c.spec)
			out[i] = Case{ID: c.id, Name: b.name(c.id + ".mp4"), Path: path, Expect: c.e, AudioDuration: d, Note: c.note}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, c := range out {
		b.add(c)
	}
	return nil
}

// sizeCases: exactly at and one byte above the configured cap.
func (b *poisonBuilder) sizeCases() error {
	limit := b.opts.MaxInputBytes
	if limit <= 0 {
		return nil
	}
	for _, s := range []struct {
		id   string
		size int64
		e    Expect
		note string
	}{
		{"size-at-cap", limit, Expect{Done, ""}, "valid MP4 padded with a free box to exactly the cap: accepted"},
		{"size-above-cap", limit + 1, Expect{Rejected, failure.TooLarge}, "valid MP4 padded to cap+1 bytes: rejected on contentLength, no message"},
	} {
		dst := filepath.Join(b.dir, s.id+".mp4")
		if err := padMP4(b.base, dst, s.size); err != nil {
			return fmt.Errorf("%s: %w", s.id, err)
		}
		b.add(Case{ID: s.id, Name: b.name(s.id + ".mp4"), Path: dst, Expect: s.e, AudioDuration: b.baseDur, Note: s.note})
	}
	return nil
}

// padMP4 copies src to dst and appends one top-level "free" box so dst is
// exactly size bytes: still a valid MP4, so only the size can reject it.
func padMP4(src, dst string, size int64) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	pad := size - st.Size()
	if pad < 8 || pad > 1<<32-1 {
		return fmt.Errorf("%w: cap %d must exceed the base clip (%d bytes) by 8 bytes to 4 GiB",
			ErrBadSpec, size, st.Size())
	}
	if err := copyFile(src, dst+".tmp"); err != nil {
		return err
	}
	f, err := os.OpenFile(dst+".tmp", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(pad))
	copy(hdr[4:], "free")
	_, err = f.Write(hdr[:])
	if err == nil {
		_, err = io.CopyN(f, zeroReader{}, pad-8)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(dst + ".tmp")
		return err
	}
	return os.Rename(dst+".tmp", dst)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// nameCases: the healthy base clip under hostile or unusual blob names.
func (b *poisonBuilder) nameCases() error {
	p := b.opts
	done := Expect{Done, ""}
	dotted := Expect{Done | Failed | Rejected, failure.BadName}
	names := []struct {
		id, name string
		e        Expect
		note     string
	}{
		{"name-shell-semicolon", "a;rm -rf ~.mp4", done, "shell metacharacters"},
		{"name-shell-subst", "$(touch " + Canary + ").mp4", done, "command substitution; must not create " + Canary},
		{"name-shell-backtick", "`touch " + Canary + "`.mp4", done, "backtick substitution; must not create " + Canary},
		{"name-shell-mix", "$(touch " + Canary + ");|&'\"<>.mp4", done, "quotes, pipes and redirections"},
		{"name-space", "a b.mp4", done, "a space"},
		{"name-glob", "*.mp4", done, "a glob"},
		{"name-url-special", "q?x=1#frag%20+&.mp4", done, "URL-reserved characters that must be escaped in the blob URL"},
		{"name-opt-i", "-i.mp4", done, "looks like an ffmpeg option"},
		{"name-opt-help", "--help.mp4", done, "looks like a long option"},
		{"name-opt-y", "-y.mp4", done, "looks like ffmpeg's overwrite flag"},
		{"name-opt-i-space", "-i x.mp4", done, "option and value"},
		{"name-dir", "dir/sub/file.mp4", done, "virtual directories; output keeps {dir}"},
		{"name-dot-slash", "./x.mp4", dotted, "a '.' segment"},
		{"name-dotdot", "a/../b.mp4", dotted, "a '..' segment inside"},
		{"name-dotdot-lead", "../../x.mp4", dotted, "leading '..' segments: never written outside the output container"},
		{"name-pct-dotdot", "%2e%2e/x.mp4", dotted, "percent-encoded '..' as literal characters"},
		{"name-nfc", "caf\u00e9.mp4", done, "é precomposed (NFC); distinct blob from name-nfd"},
		{"name-nfd", "cafe\u0301.mp4", done, "e + combining acute (NFD); distinct blob from name-nfc"},
		{"name-bidi-rlo", "invoice\u202egpj.mp4", done, "RIGHT-TO-LEFT OVERRIDE: renders as 'invoice4pm.jpg'; logs must escape it"},
		{"name-bidi-isolate", "\u2067rtl\u2069 \u200fmark.mp4", done, "bidi isolates and a right-to-left mark"},
		{"name-zero-width", "zero\u200bwidth\ufeff.mp4", done, "zero-width space and BOM"},
		{"name-emoji-cjk", "🎬 视频 ビデオ.mp4", done, "emoji and CJK"},
		{"name-case-1", "CaseOnly.mp4", done, "differs from name-case-2/3 only by case: three blobs, three outputs"},
		{"name-case-2", "caseonly.mp4", done, "differs only by case"},
		{"name-case-3", "CASEONLY.mp4", done, "differs only by case"},
		{"suffix-upper", "upper.MP4", done, "upper-case suffix: allowed suffixes are case-insensitive"},
		{"suffix-mov", "clip.mov", Expect{Ignored, ""}, "not an allowed suffix"},
		{"suffix-double", "clip.mp4.txt", Expect{Ignored, ""}, "allowed suffix in the middle only"},
		{"suffix-none", "clip", Expect{Ignored, ""}, "no suffix"},
	}
	for _, n := range names {
		name := b.name(n.name)
		e := n.e
		if !p.allowed(name) {
			e = Expect{Ignored, ""}
		} else if e.Outcome == Ignored {
			e = done
		}
		b.addName(n.id, name, e, n.note)
	}

	// 1,024 characters in total, one segment far beyond NAME_MAX (255).
	long := b.name("")
	long += strings.Repeat("n", MaxBlobNameChars-utf8.RuneCountInString(long)-len(".mp4")) + ".mp4"
	b.addName("name-1024", long, done, "exactly 1,024 characters (the blob name maximum), one segment > 255 bytes")

	// 254 segments in total.
	segs := b.name("")
	segs += strings.Repeat("s/", MaxBlobSegments-1-strings.Count(segs, "/")) + "x.mp4"
	b.addName("name-254-segments", segs, done, "254 path segments (the maximum)")
	return nil
}

// addName adds a name case on the shared base clip, adjusting the
// expectation when the output name would not fit.
func (b *poisonBuilder) addName(id, name string, e Expect, note string) {
	if e.Outcome.Has(Done) && utf8.RuneCountInString(b.opts.outputName(name)) > MaxBlobNameChars {
		e = Expect{Failed | Rejected, failure.NameTooLong}
		note += "; the output name would exceed 1,024 characters"
	}
	b.add(Case{ID: id, Name: name, Path: b.base, Expect: e, AudioDuration: b.baseDur, Note: note})
}
