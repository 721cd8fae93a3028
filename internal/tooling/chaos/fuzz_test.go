package chaos

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParseLogs feeds arbitrary text to the log parsers: they never
// panic, and the secret scanner never repeats a secret in a finding.
func FuzzParseLogs(f *testing.F) {
	f.Add(`time=2026-11-21T06:00:00Z level=INFO msg="batch task running" job=ffpipe task=abc node=n1`)
	f.Add(`time=2026-11-21T06:33:58.559Z level=INFO msg="time=2026-11-21T06:33:58.559Z level=INFO msg=refused function=Dispatch key=c9c9cc387a998d084eda04fb0bbbba46 state=input_missing"`)
	f.Add("url=http://x/c/b?sig=abc&se=1 AccountKey=k SharedAccessKey=REDACTED\nS3CRET")
	f.Add("sig=\nsig=\"\" x-functions-key: v")
	f.Fuzz(func(t *testing.T, text string) {
		if _, err := ParseBatchLog(strings.NewReader(text)); err != nil && len(text) < 1<<20 {
			t.Fatalf("ParseBatchLog: %v", err)
		}
		if _, err := ParseTerminalWrites(strings.NewReader(text)); err != nil && len(text) < 1<<20 {
			t.Fatalf("ParseTerminalWrites: %v", err)
		}
		const secret = "S3CRET-VALUE"
		found, _, _ := ScanSecrets("f.log", bytes.NewReader([]byte(text)), map[string]string{"k": secret})
		for _, s := range found {
			if strings.Contains(s, secret) {
				t.Fatalf("finding %q repeats the secret", s)
			}
		}
		if strings.Contains(text, secret) && len(found) == 0 {
			t.Fatalf("secret in %q not found", text)
		}
	})
}
