package failure

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		reason string
		want   Reason
		ok     bool
	}{
		{"decode_error: exit code 65; stderr: partial file", DecodeError, true},
		{"no_audio", NoAudio, true},
		{"too_large: the input is 9 bytes, the limit is 8 (FFPIPE_MAX_INPUT_BYTES)", TooLarge, true},
		{"upload_error: exit code 0 (after 5 dispatches)", UploadError, true},
		{"retrying at 2026-01-02T03:04:05Z after download_error: blob", "", false},
		{"batch task running", "", false},
		{"", "", false},
		{"Decode_Error: case matters", "", false},
		{"codec_not_allowed: not a code of this pipeline", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			got, ok := Parse(tt.reason)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Parse(%q) = %q, %v; want %q, %v", tt.reason, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestWith(t *testing.T) {
	tests := []struct {
		r      Reason
		detail string
		want   string
	}{
		{Empty, "", "empty"},
		{Empty, "the input blob has no content", "empty: the input blob has no content"},
		{BatchRejected, "InvalidPropertyValue", "batch_rejected: InvalidPropertyValue"},
	}
	for _, tt := range tests {
		if got := tt.r.With(tt.detail); got != tt.want {
			t.Errorf("%s.With(%q) = %q, want %q", tt.r, tt.detail, got, tt.want)
		}
	}
	if got, want := TooLarge.Withf("%d > %d", 9, 8), "too_large: 9 > 8"; got != want {
		t.Errorf("Withf = %q, want %q", got, want)
	}
}

// TestStableStrings pins the string form: records written by earlier
// versions, Status and the chaos ledger depend on it.
func TestStableStrings(t *testing.T) {
	want := []string{
		"empty", "too_large", "bad_request", "unsupported_version", "name_too_long", "unknown_preset", "unknown_profile", "bad_name",
		"input_missing", "batch_rejected", "timeout", "download_error", "upload_error", "no_output", "decode_error",
		"not_media", "no_audio", "no_video", "no_rung", "verify_failed", "task_failed", "unknown_task",
	}
	var got []string
	for _, r := range All() {
		got = append(got, r.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("All() = %q, want %q", got, want)
	}
	code := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	for _, r := range All() {
		if !code.MatchString(string(r)) || !r.Known() {
			t.Errorf("%q: want a known code of lower-case words joined by _", r)
		}
		if back, ok := Parse(r.With("detail: with a colon")); !ok || back != r {
			t.Errorf("Parse(%q.With(…)) = %q, %v", r, back, ok)
		}
	}
}

func TestInfrastructure(t *testing.T) {
	var got []Reason
	for _, r := range All() {
		if r.Infrastructure() {
			got = append(got, r)
		}
	}
	if want := []Reason{DownloadError, UploadError, NoOutput}; !slices.Equal(got, want) {
		t.Errorf("infrastructure reasons = %q, want %q", got, want)
	}
}

// TestDocumented: docs/reasons.md has a table row for every code and no
// row for a code that does not exist.
func TestDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/reasons.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|")
	documented := map[Reason]bool{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		r := Reason(m[1])
		if !r.Known() {
			t.Errorf("docs/reasons.md documents %q, which is not a code", r)
		}
		documented[r] = true
	}
	for _, r := range All() {
		if !documented[r] {
			t.Errorf("docs/reasons.md has no row for %q", r)
		}
	}
	if !strings.Contains(string(b), "internal/failure") {
		t.Errorf("docs/reasons.md does not name the package")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("decode_error: exit code 65")
	f.Add("retrying at x after upload_error: y")
	f.Add(":")
	f.Fuzz(func(t *testing.T, s string) {
		r, ok := Parse(s)
		if ok != r.Known() || ok && !strings.HasPrefix(strings.TrimSpace(s), string(r)) {
			t.Fatalf("Parse(%q) = %q, %v", s, r, ok)
		}
	})
}
