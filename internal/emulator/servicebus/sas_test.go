package servicebus

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerifySAS(t *testing.T) {
	// Worked example of docs/servicebus-wire.md#sas-tokens: key SAS_KEY_VALUE, se=1700000000.
	const good = "SharedAccessSignature sr=amqp%3a%2f%2flocalhost%2fmyqueue&sig=kNYs3MpANbLA7qL2kRwrfHKa3yLA%2BH4KnistpCGII28%3D&se=1700000000&skn=RootManageSharedAccessKey"
	before := time.Unix(1699999000, 0)
	tests := []struct {
		name     string
		token    string
		audience string
		key      string
		now      time.Time
		wantErr  string
	}{
		{"valid", good, "amqp://localhost/myqueue", "SAS_KEY_VALUE", before, ""},
		{"audience case and management suffix", good, "amqp://LOCALHOST/MyQueue/$management", "SAS_KEY_VALUE", before, ""},
		{"wrong key", good, "amqp://localhost/myqueue", "OTHER", before, "InvalidSignature"},
		{"expired", good, "amqp://localhost/myqueue", "SAS_KEY_VALUE", time.Unix(1700000001, 0), "ExpiredToken"},
		{"other audience", good, "amqp://localhost/otherqueue", "SAS_KEY_VALUE", before, "InvalidAudience"},
		{"unknown key name", strings.Replace(good, "skn=RootManageSharedAccessKey", "skn=x", 1), "amqp://localhost/myqueue", "SAS_KEY_VALUE", before, "unknown key name"},
		{"not a SAS", "Bearer abc", "amqp://localhost/myqueue", "SAS_KEY_VALUE", before, "not a SharedAccessSignature"},
		{"missing fields", "SharedAccessSignature sr=a", "amqp://localhost/myqueue", "SAS_KEY_VALUE", before, "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp, err := verifySAS(tt.token, tt.audience, "RootManageSharedAccessKey", tt.key, tt.now)
			if tt.wantErr == "" {
				if err != nil || exp.Unix() != 1700000000 {
					t.Fatalf("got %v, %v; want expiry 1700000000", exp, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want ErrInvalidToken containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "kNYs3Mp") {
				t.Errorf("error leaks the signature: %v", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Endpoint=sb://h;SharedAccessKeyName=n;SharedAccessKey=secret;UseDevelopmentEmulator=true", "Endpoint=sb://h;SharedAccessKeyName=n;SharedAccessKey=REDACTED;UseDevelopmentEmulator=true"},
		{"SharedAccessSignature sr=a&sig=abc%2B&se=1&skn=k", "SharedAccessSignature sr=a&sig=REDACTED&se=1&skn=k"},
		{"nothing secret", "nothing secret"},
	}
	for _, tt := range tests {
		if got := redact(tt.in); got != tt.want {
			t.Errorf("redact(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAudiencePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"amqp://localhost:5672/MyQueue", "myqueue"},
		{"amqp://h/q/$management", "q/$management"},
		{"amqp://h/q/$DeadLetterQueue/", "q/$deadletterqueue"},
		{"amqp://h", ""},
	}
	for _, tt := range tests {
		if got := audiencePath(tt.in); got != tt.want {
			t.Errorf("audiencePath(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"zero", Options{}, ""},
		{"path", Options{Config: "Config.json"}, ""},
		{"bad config type", Options{Config: 42}, "Config"},
		{"bad key name", Options{KeyName: "a;b"}, "KeyName"},
		{"bad key", Options{Key: "a;b"}, "Key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
}
