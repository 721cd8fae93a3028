package request

import (
	"strings"
	"testing"
)

func TestValidateContainer(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"input", true},
		{"abc", true},
		{"a-b-c", true},
		{"0utput9", true},
		{strings.Repeat("a", 63), true},
		{"ab", false},
		{strings.Repeat("a", 64), false},
		{"Input", false},
		{"-abc", false},
		{"abc-", false},
		{"a--b", false},
		{"a_b", false},
		{"a.b", false},
		{"$logs", false},
		{"inpüt", false},
		{"", false},
	}
	for _, tt := range tests {
		err := ValidateContainer(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateContainer(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestValidateBlob(t *testing.T) {
	tests := []struct {
		name string
		blob string
		ok   bool
	}{
		{"simple", "a.mp4", true},
		{"dir", "videos/2024/a.mp4", true},
		{"unicode", "vidéos/日本語/🎬.mp4", true},
		{"shell metacharacters", "a;rm -rf ~ $(id) `id` '\"|&<>*.mp4", true},
		{"option-like", "-i x.mp4", true},
		{"percent-encoded dots", "%2e%2e/x.mp4", true},
		{"backslash", `a\..\b.mp4`, true},
		{"rtl override", "a\u202egpm.mp4", true},
		{"1024 chars", strings.Repeat("a", 1020) + ".mp4", true},
		{"1024 multibyte chars", strings.Repeat("é", 1020) + ".mp4", true},
		{"1025 chars", strings.Repeat("a", 1021) + ".mp4", false},
		{"254 segments", strings.Repeat("a/", 253) + "b", true},
		{"255 segments", strings.Repeat("a/", 254) + "b", false},
		{"empty", "", false},
		{"NUL", "a\x00.mp4", false},
		{"newline", "a\n.mp4", false},
		{"tab", "a\t.mp4", false},
		{"DEL", "a\x7f.mp4", false},
		{"U+FFFE", "a\ufffe.mp4", false},
		{"invalid UTF-8", "a\xff.mp4", false},
		{"trailing dot", "a.mp4.", false},
		{"trailing slash", "a/", false},
		{"leading slash", "/a.mp4", false},
		{"double slash", "a//b.mp4", false},
		{"dot segment", "a/./b.mp4", false},
		{"dotdot segment", "../../x.mp4", false},
		{"inner dotdot", "a/../../b.mp4", false},
		{"only dots", "..", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateBlob(tt.blob)
			if (err == nil) != tt.ok {
				t.Errorf("ValidateBlob(%q) = %v, want ok=%v", quoteExcerpt(tt.blob), err, tt.ok)
			}
		})
	}
}

func TestQuoteExcerptEscapes(t *testing.T) {
	got := quoteExcerpt("a\nb\u202e" + strings.Repeat("x", 100))
	if strings.ContainsAny(got, "\n\u202e") {
		t.Errorf("quoteExcerpt = %q, contains raw control/bidi characters", got)
	}
	if len(got) > 60 {
		t.Errorf("quoteExcerpt length = %d, want ≤ 60", len(got))
	}
}

func TestValidCorrelationID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"corr-1", true},
		{"b0bc43d7edcd08834d321f2e38d8a6a3", true},
		{strings.Repeat("x", MaxCorrelationIDLen), true},
		{strings.Repeat("x", MaxCorrelationIDLen+1), false},
		{"", false},
		{"a b", false},
		{"a\tb", false},
		{"é", false},
		{"a\x7f", false},
	}
	for _, tt := range tests {
		if got := ValidCorrelationID(tt.in); got != tt.want {
			t.Errorf("ValidCorrelationID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
