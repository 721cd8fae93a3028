package media

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ffpipe/ffpipe/internal/failure"
)

const fixtureLimit = 1 << 20

// poisonFixture is one poison set shared by the tests that only read it.
// Its playlists point at a canary server that counts requests.
var poisonFixture = sync.OnceValues(func() ([]Case, error) {
	canaryServer = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		canaryHits.Add(1)
		http.NotFound(w, r)
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return PoisonSet(ctx, filepath.Join(testCache, "poison-fixture"), PoisonOptions{
		Base:          ClipSpec{Duration: time.Second, Width: 64, Height: 48, FPS: 10, CacheDir: testCache},
		Prefix:        "poison/",
		MaxInputBytes: fixtureLimit,
		LongDuration:  15 * time.Second,
		CanaryURL:     canaryServer.URL + "/" + Canary,
		Expect:        map[string]Expect{"audio-ac3": {Failed, "codec_not_allowed"}},
	})
})

var (
	canaryServer *httptest.Server // closed by TestMain
	canaryHits   atomic.Int64
)

func TestPoisonSet(t *testing.T) {
	needFFmpeg(t)
	ctx := testCtx(t)
	const limit = fixtureLimit
	cases, err := poisonFixture()
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Case{}
	names := map[string]string{}
	for _, c := range cases {
		if _, dup := byID[c.ID]; dup {
			t.Errorf("duplicate ID %q", c.ID)
		}
		byID[c.ID] = c
		if other, dup := names[c.Name]; dup {
			t.Errorf("cases %s and %s share the blob name %q", c.ID, other, c.Name)
		}
		names[c.Name] = c.ID
		if !strings.HasPrefix(c.Name, "poison/") {
			t.Errorf("%s: name %q lacks the prefix", c.ID, c.Name)
		}
		if err := ValidBlobName(c.Name); err != nil {
			t.Errorf("%s: %v", c.ID, err)
		}
		if c.Expect.Outcome == 0 {
			t.Errorf("%s: no expected outcome", c.ID)
		}
		if c.Note == "" {
			t.Errorf("%s: no note", c.ID)
		}
		st, err := os.Stat(c.Path)
		if err != nil {
			t.Fatalf("%s: %v", c.ID, err)
		}
		if st.Size() != c.Size {
			t.Errorf("%s: Size %d, file has %d bytes", c.ID, c.Size, st.Size())
		}
		if c.Expect.Outcome.Has(Done) && c.AudioDuration <= 0 {
			t.Errorf("%s: Done expected but no AudioDuration", c.ID)
		}
	}
	must := func(id string) Case {
		t.Helper()
		c, ok := byID[id]
		if !ok {
			t.Fatalf("case %q missing", id)
		}
		return c
	}
	base := must("plain")

	t.Run("expectations", func(t *testing.T) {
		tests := []struct {
			id   string
			want Expect
		}{
			{"empty", Expect{Rejected, failure.Empty}},
			{"size-above-cap", Expect{Rejected, failure.TooLarge}},
			{"size-at-cap", Expect{Done, ""}},
			{"truncated-50", Expect{Failed, failure.DecodeError}},
			{"random-bytes", Expect{Failed, failure.NotMedia}},
			{"hls-playlist", Expect{Failed, failure.NotMedia}},
			{"no-audio", Expect{Failed, failure.NoAudio}},
			{"multi-audio", Expect{Done, ""}},
			{"audio-ac3", Expect{Failed, "codec_not_allowed"}}, // overridden
			{"name-shell-mix", Expect{Done, ""}},
			{"name-dotdot", Expect{Done | Failed | Rejected, failure.BadName}},
			{"name-1024", Expect{Done, ""}},
			{"suffix-upper", Expect{Done, ""}},
			{"suffix-mov", Expect{Ignored, ""}},
			{"suffix-none", Expect{Ignored, ""}},
		}
		for _, tt := range tests {
			if got := must(tt.id).Expect; got != tt.want {
				t.Errorf("%s: got %v, want %v", tt.id, got, tt.want)
			}
		}
	})

	t.Run("sizes", func(t *testing.T) {
		if got := must("empty").Size; got != 0 {
			t.Errorf("empty: got %d bytes, want 0", got)
		}
		if got := must("size-at-cap").Size; got != limit {
			t.Errorf("size-at-cap: got %d bytes, want %d", got, limit)
		}
		if got := must("size-above-cap").Size; got != limit+1 {
			t.Errorf("size-above-cap: got %d bytes, want %d", got, limit+1)
		}
		for _, id := range []string{"truncated-10", "truncated-50", "truncated-99"} {
			c := must(id)
			if c.Size <= 0 || c.Size >= base.Size {
				t.Errorf("%s: got %d bytes, want 0 < size < %d", id, c.Size, base.Size)
			}
			if !bytes.HasPrefix(mustRead(t, base.Path), mustRead(t, c.Path)) {
				t.Errorf("%s is not a prefix of the base clip", id)
			}
		}
		if must("truncated-10").Size >= must("truncated-50").Size {
			t.Errorf("truncated-10 not shorter than truncated-50")
		}
	})

	t.Run("media", func(t *testing.T) {
		probe := func(id string) Info {
			t.Helper()
			info, err := Probe(ctx, must(id).Path)
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			return info
		}
		if info := probe("no-audio"); len(info.AudioStreams()) != 0 || len(info.VideoStreams()) != 1 {
			t.Errorf("no-audio: got streams %s, want video only", describe(info))
		}
		multi := probe("multi-audio")
		if got := len(multi.AudioStreams()); got < 2 {
			t.Errorf("multi-audio: got %d audio streams, want ≥ 2", got)
		}
		if d0, d1 := multi.AudioStreams()[0].Duration, multi.AudioStreams()[1].Duration; d0-d1 < 200*time.Millisecond {
			t.Errorf("multi-audio: track durations %v and %v, want track 1 clearly shorter", d0, d1)
		}
		if got := probe("video-magicyuv").VideoStreams()[0].CodecName; got != "magicyuv" {
			t.Errorf("video-magicyuv: got codec %q", got)
		}
		if got := probe("video-hevc").VideoStreams()[0].CodecName; got != "hevc" {
			t.Errorf("video-hevc: got codec %q", got)
		}
		if got := probe("audio-ac3").AudioStreams()[0].CodecName; got != "ac3" {
			t.Errorf("audio-ac3: got codec %q", got)
		}
		if got := len(probe("audio-only").VideoStreams()); got != 0 {
			t.Errorf("audio-only: got %d video streams", got)
		}
		if d := must("very-long").AudioDuration; (d - 15*time.Second).Abs() > 200*time.Millisecond { // one 8 kHz AAC frame is 128 ms
			t.Errorf("very-long: got %v, want 15s", d)
		}
		for _, id := range []string{"empty", "truncated-50", "random-bytes", "no-audio"} {
			if d := must(id).AudioDuration; d != 0 {
				t.Errorf("%s: AudioDuration %v, want 0", id, d)
			}
		}
		// Padding keeps the clip valid: only its size can reject it.
		for _, id := range []string{"size-at-cap", "size-above-cap", "truncated-50"} {
			info := probe(id)
			if d, ok := info.AudioDuration(); !ok || d <= 0 {
				t.Errorf("%s: not playable media (%s)", id, describe(info))
			}
		}
		// Not media at all. (The playlists are never probed: an
		// auto-detecting ffprobe would follow them.)
		for _, id := range []string{"random-bytes", "text", "html", "truncated-moov-missing", "empty"} {
			if _, err := Probe(ctx, must(id).Path); !errors.Is(err, ErrProbe) {
				t.Errorf("%s: probe got %v, want ErrProbe", id, err)
			}
		}
		for id, want := range map[string]string{"hls-playlist": "#EXTM3U", "ffconcat-script": "ffconcat version 1.0"} {
			data := string(mustRead(t, must(id).Path))
			if !strings.HasPrefix(data, want) || !strings.Contains(data, "/etc/passwd") || !strings.Contains(data, canaryServer.URL+"/"+Canary) {
				t.Errorf("%s: got %q, want a %s naming /etc/passwd and the canary URL", id, data, want)
			}
		}
	})

	t.Run("names", func(t *testing.T) {
		for _, c := range cases {
			if strings.HasPrefix(c.ID, "name-") || strings.HasPrefix(c.ID, "suffix-") {
				if c.Path != base.Path && c.Path != must("empty").Path {
					// name cases share the base clip
					if !bytes.Equal(mustRead(t, c.Path), mustRead(t, base.Path)) {
						t.Errorf("%s: content differs from the base clip", c.ID)
					}
				}
			}
			if !utf8.ValidString(c.Name) {
				t.Errorf("%s: name not valid UTF-8", c.ID)
			}
		}
		long := must("name-1024").Name
		if got := utf8.RuneCountInString(long); got != MaxBlobNameChars {
			t.Errorf("name-1024: got %d characters, want %d", got, MaxBlobNameChars)
		}
		if got := strings.Count(must("name-254-segments").Name, "/") + 1; got != MaxBlobSegments {
			t.Errorf("name-254-segments: got %d segments, want %d", got, MaxBlobSegments)
		}
		nfc, nfd := must("name-nfc").Name, must("name-nfd").Name
		if nfc == nfd || strings.ReplaceAll(nfd, "e\u0301", "\u00e9") != nfc {
			t.Errorf("NFC/NFD: got %q and %q, want two spellings of one name", nfc, nfd)
		}
		if !strings.ContainsRune(must("name-bidi-rlo").Name, '\u202e') {
			t.Errorf("name-bidi-rlo lacks U+202E")
		}
		c1, c2, c3 := must("name-case-1").Name, must("name-case-2").Name, must("name-case-3").Name
		if !strings.EqualFold(c1, c2) || !strings.EqualFold(c2, c3) || c1 == c2 || c2 == c3 || c1 == c3 {
			t.Errorf("case names: got %q %q %q, want three names equal but for case", c1, c2, c3)
		}
		for _, id := range []string{"name-shell-subst", "name-shell-backtick", "name-shell-mix"} {
			if !strings.Contains(must(id).Name, Canary) {
				t.Errorf("%s: name %q does not name the canary", id, must(id).Name)
			}
		}
	})
}

func TestPoisonSetOptions(t *testing.T) {
	needFFmpeg(t)
	ctx := testCtx(t)
	base := ClipSpec{Duration: time.Second, Width: 64, Height: 48, FPS: 10, CacheDir: testCache}

	t.Run("cap-below-base", func(t *testing.T) {
		_, err := PoisonSet(ctx, t.TempDir(), PoisonOptions{Base: base, LongDuration: -1, MaxInputBytes: 100})
		if !errors.Is(err, ErrBadSpec) {
			t.Errorf("got %v, want ErrBadSpec", err)
		}
	})

	t.Run("unknown-override", func(t *testing.T) {
		_, err := PoisonSet(ctx, t.TempDir(), PoisonOptions{Base: base, LongDuration: -1,
			Expect: map[string]Expect{"no-audio": {Failed, "x"}, "very-long": {Done, ""}, "typo": {Done, ""}}})
		if !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), `"typo" "very-long"`) {
			t.Errorf("got %v, want ErrBadSpec naming typo and very-long", err)
		}
	})

	t.Run("long-output-ext-and-suffixes", func(t *testing.T) {
		cases, err := PoisonSet(ctx, t.TempDir(), PoisonOptions{
			Base: base, LongDuration: -1, OutputExt: "flac", AllowedSuffixes: []string{".mp4", ".mov"},
		})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]Expect{}
		for _, c := range cases {
			got[c.ID] = c.Expect
		}
		want := map[string]Expect{
			"name-1024":  {Failed | Rejected, failure.NameTooLong},
			"suffix-mov": {Done, ""},
			"plain":      {Done, ""},
		}
		for id, w := range want {
			if got[id] != w {
				t.Errorf("%s: got %v, want %v", id, got[id], w)
			}
		}
		for _, id := range []string{"very-long", "size-at-cap", "size-above-cap"} {
			if _, ok := got[id]; ok {
				t.Errorf("%s present, want omitted", id)
			}
		}
	})
}

func TestExpectAllows(t *testing.T) {
	tests := []struct {
		e      Expect
		got    Outcome
		reason string
		want   bool
	}{
		{Expect{Done, ""}, Done, "", true},
		{Expect{Done, ""}, Failed, "x", false},
		{Expect{Failed, "no_audio"}, Failed, "exit 1: no_audio: stream map matches nothing", true},
		{Expect{Failed, "no_audio"}, Failed, "decode_error", false},
		{Expect{Failed, ""}, Failed, "anything", true},
		{Expect{Done | Rejected, failure.BadName}, Done, "", true},
		{Expect{Done | Rejected, failure.BadName}, Rejected, "bad_name: dot segment", true},
		{Expect{Done | Rejected, failure.BadName}, Failed, "bad_name", false},
		{Expect{Ignored, ""}, Ignored, "", true},
		{Expect{Done | Failed, ""}, Done | Failed, "", false}, // an observation is one outcome
		{Expect{Done, ""}, 0, "", false},
	}
	for _, tt := range tests {
		if got := tt.e.Allows(tt.got, tt.reason); got != tt.want {
			t.Errorf("%v.Allows(%v, %q): got %v, want %v", tt.e, tt.got, tt.reason, got, tt.want)
		}
	}
}

func TestOutcomeString(t *testing.T) {
	tests := []struct {
		o    Outcome
		want string
	}{
		{Done, "done"},
		{Failed | Rejected, "failed|rejected"},
		{Ignored, "ignored"},
		{0, "Outcome(0)"},
		{Done | 64, "done|Outcome(64)"},
	}
	for _, tt := range tests {
		if got := tt.o.String(); got != tt.want {
			t.Errorf("Outcome(%d).String(): got %q, want %q", uint8(tt.o), got, tt.want)
		}
	}
}

func TestValidBlobName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a.mp4", true},
		{"dir/sub/a.mp4", true},
		{strings.Repeat("x", 1024), true},
		{strings.Repeat("é", 1024), true},
		{strings.Repeat("x", 1025), false},
		{strings.Repeat("a/", 253) + "b", true},
		{strings.Repeat("a/", 254) + "b", false},
		{"", false},
		{"tab\there.mp4", false},
		{"nul\x00.mp4", false},
		{"del\x7f.mp4", false},
		{"bad\xff.mp4", false},
		{"ends.", false},
		{"ends/", false},
	}
	for _, tt := range tests {
		if err := ValidBlobName(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidBlobName(%.40q): got %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestOutcomeText(t *testing.T) {
	tests := []struct {
		in      string
		want    Outcome
		wantErr bool
	}{
		{"done", Done, false},
		{"Failed | rejected", Failed | Rejected, false},
		{"ignored|done", Done | Ignored, false},
		{"", 0, true},
		{"done|", 0, true},
		{"converted", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseOutcome(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseOutcome(%q): got %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	e := Expect{Done | Failed, "codec"}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"Outcome":"done|failed","ReasonContains":"codec"}`; string(b) != want {
		t.Errorf("json: got %s, want %s", b, want)
	}
	var back Expect
	if err := json.Unmarshal(b, &back); err != nil || back != e {
		t.Errorf("round trip: got %v, %v; want %v", back, err, e)
	}
	if _, err := json.Marshal(Expect{}); err == nil {
		t.Errorf("marshal of the zero Outcome: got nil error")
	}
}

func FuzzParseOutcome(f *testing.F) {
	for _, s := range []string{"done", "failed|rejected", "IGNORED", " done | done ", "|", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOutcome(s)
		if err != nil {
			return
		}
		// Whatever parses, prints and parses back to itself.
		b, err := o.MarshalText()
		if err != nil {
			t.Fatalf("MarshalText(%v) after parsing %q: %v", o, s, err)
		}
		again, err := ParseOutcome(string(b))
		if err != nil || again != o {
			t.Fatalf("round trip of %q: got %v, %v; want %v", s, again, err, o)
		}
	})
}
