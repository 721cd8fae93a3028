package servicebus

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/secret"
)

// verifySAS checks a Service Bus shared access signature token against the
// configured key and returns its expiry. audience is the put-token name.
func verifySAS(token, audience, keyName, key string, now time.Time) (time.Time, error) {
	const prefix = "SharedAccessSignature "
	if !strings.HasPrefix(token, prefix) {
		return time.Time{}, fmt.Errorf("%w: not a SharedAccessSignature token", ErrInvalidToken)
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(strings.TrimPrefix(token, prefix), "&") {
		k, v, _ := strings.Cut(kv, "=")
		fields[k] = v
	}
	sr, sig, se, skn := fields["sr"], fields["sig"], fields["se"], fields["skn"]
	if sr == "" || sig == "" || se == "" || skn == "" {
		return time.Time{}, fmt.Errorf("%w: missing sr, sig, se or skn", ErrInvalidToken)
	}
	if skn != keyName {
		return time.Time{}, fmt.Errorf("%w: unknown key name %q", ErrInvalidToken, skn)
	}
	secs, err := strconv.ParseInt(se, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: bad expiry", ErrInvalidToken)
	}
	got, err := url.QueryUnescape(sig)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: bad signature encoding", ErrInvalidToken)
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(sr + "\n" + se))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(got), []byte(want)) {
		return time.Time{}, fmt.Errorf("%w: InvalidSignature: the token has an invalid signature", ErrInvalidToken)
	}
	exp := time.Unix(secs, 0)
	if !exp.After(now) {
		return time.Time{}, fmt.Errorf("%w: ExpiredToken: The token is expired. Expiration time: %s", ErrInvalidToken, exp.UTC().Format(time.RFC3339))
	}
	resource, err := url.QueryUnescape(sr)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: bad resource encoding", ErrInvalidToken)
	}
	if !strings.HasPrefix(strings.ToLower(audience), strings.ToLower(resource)) {
		return time.Time{}, fmt.Errorf("%w: InvalidAudience: token resource %q does not cover %q", ErrInvalidToken, resource, audience)
	}
	return exp, nil
}

// audiencePath returns the entity path of an audience
// ("amqp://host:port/q/$management" → "q/$management"), lower-cased.
func audiencePath(audience string) string {
	s := audience
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
		if j := strings.IndexByte(s, '/'); j >= 0 {
			s = s[j+1:]
		} else {
			s = ""
		}
	}
	return strings.ToLower(strings.Trim(s, "/"))
}

// redact hides secrets (SAS signatures and keys) in s for logs and errors.
func redact(s string) string { return secret.Redact(s) }
