package secret

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Endpoint=sb://x/;SharedAccessKeyName=Root;SharedAccessKey=abc123secret=;",
			"Endpoint=sb://x/;SharedAccessKeyName=Root;SharedAccessKey=REDACTED;"},
		{"DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0a2V5==;EndpointSuffix=core.windows.net",
			"DefaultEndpointsProtocol=https;AccountName=a;AccountKey=REDACTED;EndpointSuffix=core.windows.net"},
		{"GET https://a.blob.core.windows.net/c/b?sv=2023&sp=r&sig=AbCdEf%2B123 failed",
			"GET https://a.blob.core.windows.net/c/b?sv=2023&sp=r&sig=REDACTED failed"},
		{"Authorization: Bearer eyJhbGciOi.secret", "Authorization: Bearer REDACTED"},
		{"Endpoint=sb://h;SharedAccessKeyName=n;SharedAccessKey=secret;UseDevelopmentEmulator=true",
			"Endpoint=sb://h;SharedAccessKeyName=n;SharedAccessKey=REDACTED;UseDevelopmentEmulator=true"},
		{"SharedAccessSignature sr=a&sig=abc%2B&se=1&skn=k", "SharedAccessSignature sr=a&sig=REDACTED&se=1&skn=k"},
		{"SharedAccessSignature=sv=1;", "SharedAccessSignature=REDACTED;"},
		{"https://h/x?code=abc&sig=def", "https://h/x?code=REDACTED&sig=REDACTED"},
		{`{"url":"https://h/x?sig=def"}`, `{"url":"https://h/x?sig=REDACTED"}`},
		{"u?sv=1&sig=abc%2Bdef&se=2", "u?sv=1&sig=REDACTED&se=2"},
		// Harmless text stays as it is.
		{"nothing secret", "nothing secret"},
		{"key=abc correlationId=xyz", "key=abc correlationId=xyz"},
		{"exitcode=1 errcode=2 design=3", "exitcode=1 errcode=2 design=3"},
		{"bearer token required", "bearer REDACTED required"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q):\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://acct.batch.azure.com/?sv=1&sig=abc", "https://acct.batch.azure.com/?redacted"},
		{"https://acct.batch.azure.com", "https://acct.batch.azure.com"},
		{"::not a url sig=abc", "::not a url sig=REDACTED"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactError(t *testing.T) {
	if RedactError(nil) != nil {
		t.Fatal("RedactError(nil) != nil")
	}
	base := fmt.Errorf("open https://a/b?sig=SECRET: %w", fs.ErrNotExist)
	err := RedactError(base)
	if strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "sig=REDACTED") {
		t.Errorf("Error() = %q", err)
	}
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, base) {
		t.Errorf("errors.Is lost the wrapped error: %v", err)
	}
}

// FuzzRedact: a secret value placed after any prefix never survives, and
// redacting twice changes nothing more.
func FuzzRedact(f *testing.F) {
	f.Add("conn ", "AccountKey=", "c2VjcmV0")
	f.Add("https://h/x?", "sig=", "abc%2F")
	f.Add("Authorization: ", "Bearer ", "eyJ0")
	f.Fuzz(func(t *testing.T, prefix, name, value string) {
		once := Redact(prefix + name + value)
		if Redact(once) != once {
			t.Fatalf("not idempotent: %q → %q", once, Redact(once))
		}
		known := map[string]bool{"AccountKey=": true, "SharedAccessKey=": true, "sig=": true, "Bearer ": true}
		if !known[name] || len(value) < 4 || strings.ContainsAny(value, ";&\"', \t\n\r\v\f\u0085\u00a0") || strings.Contains(Marker, value) {
			return
		}
		if len(prefix) > 0 && isWord(prefix[len(prefix)-1]) && (name == "sig=" || name == "Bearer ") {
			return // "xsig=" is not a signature
		}
		if strings.Contains(once, name+value) {
			t.Fatalf("Redact(%q) = %q: the value survived", prefix+name+value, once)
		}
	})
}

func isWord(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
