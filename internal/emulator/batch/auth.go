package batch

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// DefaultAccountKey is the Shared Key the stand-in accepts when
// Options.AccountKey is empty (base64, as Batch account keys are). It is a
// development value, not a secret.
const DefaultAccountKey = "ZmZwaXBlIGxvY2FsIGJhdGNoIHNoYXJlZCBrZXk6IGEgZGV2ZWxvcG1lbnQgdmFsdWUsIG5vdCBhIHNlY3JldCE="

// sharedKeySkew is how far the request's ocp-date (or Date) may be from the
// server's clock: "The Batch service must receive a request within 15
// minutes of when it is created" (docs/batch-standin.md, "Authentication").
const sharedKeySkew = 15 * time.Minute

// authError is nil when r is authenticated: a bearer token equal to
// Options.Token, or a Shared Key signature over the request made with
// Options.AccountKey for Options.AccountName.
func (s *Server) authError(r *http.Request) *apiError {
	auth := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(auth, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(cred) != "":
		if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(cred)), []byte(s.opts.Token)) == 1 {
			return nil
		}
		return errAuth(http.StatusUnauthorized, "the bearer token is not the configured development token")
	case strings.EqualFold(scheme, "SharedKey"):
		return s.checkSharedKey(r, strings.TrimSpace(cred))
	}
	return errAuth(http.StatusUnauthorized,
		"send Authorization: Bearer <token> with the configured development token, or SharedKey <account>:<signature> made with the account key")
}

func errAuth(status int, reason string) *apiError {
	return newErr(status, "AuthenticationFailed",
		"Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
		"AuthenticationErrorDetail", reason)
}

// checkSharedKey verifies "SharedKey <account>:<signature>" as the Batch
// service does (docs/batch-standin.md, "Authentication").
func (s *Server) checkSharedKey(r *http.Request, cred string) *apiError {
	account, sig, ok := strings.Cut(cred, ":")
	if !ok || sig == "" {
		return errAuth(http.StatusUnauthorized, "the SharedKey credential is not <account>:<signature>")
	}
	if !strings.EqualFold(account, s.opts.AccountName) {
		return errAuth(http.StatusForbidden, "the account name is not "+s.opts.AccountName)
	}
	created := r.Header.Get("ocp-date")
	if created == "" {
		created = r.Header.Get("Date")
	}
	at, err := http.ParseTime(created)
	if err != nil {
		return errAuth(http.StatusForbidden, "the request has no valid ocp-date or Date header")
	}
	if d := time.Since(at); d > sharedKeySkew || d < -sharedKeySkew {
		return errAuth(http.StatusForbidden, "the request's ocp-date is more than 15 minutes from the server's time")
	}
	key, _ := base64.StdEncoding.DecodeString(s.opts.AccountKey) // Validate checked it
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return errAuth(http.StatusForbidden, "the signature is not base64")
	}
	for _, str := range stringsToSign(r, s.opts.AccountName) {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(str))
		if hmac.Equal(mac.Sum(nil), got) {
			return nil
		}
	}
	return errAuth(http.StatusForbidden, "the signature does not match the request signed with the account key")
}

// stringsToSign returns the Shared Key string to sign for r. Where clients
// differ within the documented format (Content-Length "0" or empty; a Date
// header sent beside ocp-date signed or left empty), each variant is
// returned.
func stringsToSign(r *http.Request, account string) []string {
	h := r.Header
	lengths := []string{h.Get("Content-Length")}
	if lengths[0] == "0" {
		lengths = append(lengths, "")
	}
	dates := []string{h.Get("Date")}
	if dates[0] != "" && h.Get("ocp-date") != "" {
		dates = append(dates, "")
	}
	tail := canonicalHeaders(h) + canonicalResource(r, account)
	var out []string
	for _, length := range lengths {
		for _, date := range dates {
			lines := []string{r.Method, h.Get("Content-Encoding"), h.Get("Content-Language"), length,
				h.Get("Content-MD5"), h.Get("Content-Type"), date, h.Get("If-Modified-Since"), h.Get("If-Match"),
				h.Get("If-None-Match"), h.Get("If-Unmodified-Since"), h.Get("Range")}
			out = append(out, strings.Join(lines, "\n")+"\n"+tail)
		}
	}
	return out
}

// canonicalHeaders: the ocp- headers, lower-case names sorted, "name:value\n".
func canonicalHeaders(h http.Header) string {
	var names []string
	for name := range h {
		if n := strings.ToLower(name); strings.HasPrefix(n, "ocp-") && h.Get(name) != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n + ":" + strings.TrimSpace(h.Get(n)) + "\n")
	}
	return b.String()
}

// canonicalResource: "/<account><path as sent>" then "\nname:value" per
// query parameter, names lower-case and sorted, values unescaped.
func canonicalResource(r *http.Request, account string) string {
	path, _, _ := strings.Cut(r.RequestURI, "?")
	if path == "" || !strings.HasPrefix(path, "/") {
		path = r.URL.EscapedPath()
	}
	var b strings.Builder
	b.WriteString("/" + account + path)
	q, _ := url.ParseQuery(r.URL.RawQuery)
	names := make([]string, 0, len(q))
	vals := map[string][]string{}
	for k, v := range q {
		lk := strings.ToLower(k)
		for _, x := range v {
			if x != "" {
				vals[lk] = append(vals[lk], x)
			}
		}
		if len(vals[lk]) > 0 && !slices.Contains(names, lk) {
			names = append(names, lk)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		sort.Strings(vals[n])
		b.WriteString("\n" + n + ":" + strings.Join(vals[n], ","))
	}
	return b.String()
}
