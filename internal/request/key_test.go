package request

import (
	"fmt"
	"testing"

	"github.com/ffpipe/ffpipe/internal/etags"
)

// Golden vectors computed independently: printf '%s' "$s" | sha256sum | cut -c1-32
func TestKeyGolden(t *testing.T) {
	tests := []struct {
		account, container, blob, etag string
		want                           string
	}{
		{"devstoreaccount1", "input", "videos/a.mp4", "0x8DC1234567890AB", "b0bc43d7edcd08834d321f2e38d8a6a3"},
		{"devstoreaccount1", "input", "videos/a.mp4", `"0x8DC1234567890AB"`, "b0bc43d7edcd08834d321f2e38d8a6a3"},
		{"devstoreaccount1", "input", "videos/a.mp4", `W/"0x8DC1234567890AB"`, "b0bc43d7edcd08834d321f2e38d8a6a3"},
		{"devstoreaccount1", "input", "videos/a.mp4", ` "0x8DC1234567890AB" `, "b0bc43d7edcd08834d321f2e38d8a6a3"},
		{"acct", "input", "a.mp4", "0x1", "1c3af610c79ca8161eaa5a4177b48b9e"},
		{"acct", "input", "A.mp4", "0x1", "21e3523959f9c7c18d834c7f062a8c9b"},
		{"acct", "input", "vidéos/ü.mp4", "0x8DD4C85B545ACB9", "e982f3c9ca8d35ead235089f4aeb86d4"},
		{"acct", "input", "a.mp4", "", "c90d67848d69aaad0caa80d3b827b138"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/%s/%s", tt.account, tt.container, tt.blob, tt.etag), func(t *testing.T) {
			got := Key(tt.account, tt.container, tt.blob, tt.etag)
			if got != tt.want {
				t.Errorf("Key = %s, want %s", got, tt.want)
			}
			if !IsKey(got) {
				t.Errorf("IsKey(%s) = false, want true", got)
			}
		})
	}
}

func TestIsKey(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"b0bc43d7edcd08834d321f2e38d8a6a3", true},
		{"B0BC43D7EDCD08834D321F2E38D8A6A3", false},
		{"b0bc43d7edcd08834d321f2e38d8a6a", false},
		{"b0bc43d7edcd08834d321f2e38d8a6a3a", false},
		{"g0bc43d7edcd08834d321f2e38d8a6a3", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsKey(tt.in); got != tt.want {
			t.Errorf("IsKey(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// FuzzKey: keys are always valid Batch task ids and deterministic, and the
// separator makes the (container, blob) split unambiguous for valid names.
func FuzzKey(f *testing.F) {
	f.Add("acct", "input", "a.mp4", "0x1")
	f.Add("acct", "input", "A.mp4", `W/"0x1"`)
	f.Add("", "", "", "")
	f.Fuzz(func(t *testing.T, account, container, blob, etag string) {
		k := Key(account, container, blob, etag)
		if !IsKey(k) {
			t.Fatalf("Key = %q, not a key", k)
		}
		if k2 := Key(account, container, blob, etags.Normalize(etag)); k2 != k {
			t.Fatalf("Key not stable under eTag normalisation: %s vs %s", k, k2)
		}
	})
}
