package handlers

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
	"github.com/ffpipe/ffpipe/internal/emulator/azurite/azuritetest"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/storage"
)

// TestStatusPageDelegationLinks runs the Status page's download links the
// way they are made in Azure: the storage client holds an Entra token
// credential, gets a user delegation key from Azurite (HTTPS, --oauth
// basic) and signs a user delegation SAS for each done output. Each link is
// then used as a browser would: a plain GET downloads the blob; a PUT or
// DELETE with it is refused, so is the same query on another blob, a link
// whose expiry is past, and one whose se= was moved. docs/status-page.md
// says what Azurite checks and what it does not.
func TestStatusPageDelegationLinks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	az, hc := azuritetest.StartOAuth(t)
	tok := azuritetest.Token{}
	newStore := func(now func() time.Time) *storage.Client {
		t.Helper()
		c, err := storage.NewWithCredential(az.AccountURL(), tok, storage.Options{Now: now,
			ClientOptions: &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: hc}}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	st := newStore(nil)
	for _, b := range []struct{ cont, name, body string }{
		{"output", "videos/a.mp3", "the output of a"},
		{"output", "videos/b.mp3", "another output"},
		{"input", "videos/a.mp3", "an input"},
	} {
		if err := st.EnsureContainer(ctx, b.cont); err != nil {
			t.Fatal(err)
		}
		if err := st.Put(ctx, b.cont, b.name, []byte(b.body), "application/octet-stream", nil); err != nil {
			t.Fatalf("put %s/%s with the bearer token: %v", b.cont, b.name, err)
		}
	}

	e := newEnv(t, nil)
	putIndexed(t, e, records.Record{Key: strings.Repeat("0", 31) + "a", State: records.StateDone,
		Source: records.Blob{Container: "input", Blob: "videos/a.mp4"}, Output: records.Blob{Container: "output", Blob: "videos/a.mp3", Size: 15}})
	// pageLink renders the page with signer as the handler's SAS and
	// returns the one download link on it.
	pageLink := func(signer Signer) string {
		t.Helper()
		d := e.deps
		d.SAS = signer
		e.h = New(e.cfg, d)
		hr := e.status(statusEnvelope("http://127.0.0.1/api/status?code=k", map[string]string{}, map[string][]string{"Accept": {"text/html"}}))
		m := regexp.MustCompile(`<a href="(https://`+regexp.QuoteMeta(azurite.AccountHost)+`:\d+/[^"]+)">`).FindAllStringSubmatch(hr.Body, -1)
		if len(m) != 1 {
			t.Fatalf("download links on the page: got %d, want 1:\n%s", len(m), hr.Body)
		}
		return html.UnescapeString(m[0][1])
	}

	before := time.Now().UTC().Truncate(time.Second)
	link := pageLink(st)
	after := time.Now().UTC()
	u, q := parseLink(t, link)
	if want := az.AccountURL() + "/output/videos/a.mp3"; u.Scheme+"://"+u.Host+u.Path != want {
		t.Errorf("link target: got %s, want %s", u.Scheme+"://"+u.Host+u.Path, want)
	}
	// The signed fields: read only, one blob, HTTPS only, the key of the
	// token's principal, and an expiry downloadTTL after signing.
	for k, want := range map[string]string{"sp": "r", "sr": "b", "spr": "https", "sks": "b",
		"skoid": azuritetest.TestOID, "sktid": azuritetest.TestTID} {
		if got := q.Get(k); got != want {
			t.Errorf("link %s=: got %q, want %q", k, got, want)
		}
	}
	se, sst := signedTime(t, q, "se"), signedTime(t, q, "st")
	if se.Before(before.Add(downloadTTL)) || se.After(after.Add(downloadTTL)) {
		t.Errorf("link se=%s: want %v after signing, between %s and %s", q.Get("se"), downloadTTL, before.Add(downloadTTL), after.Add(downloadTTL))
	}
	if got, want := se.Sub(sst), downloadTTL+5*time.Minute; got != want {
		t.Errorf("link st..se: got %v, want %v (the TTL plus the 5-minute clock-skew allowance)", got, want)
	}
	if ske := signedTime(t, q, "ske"); ske.Before(se) {
		t.Errorf("delegation key ske=%s ends before the link's se=%s", q.Get("ske"), q.Get("se"))
	}

	// ffpipe's signature is the user delegation SAS of its version (sv=),
	// computed under the key Azurite issued for this principal and window.
	key := delegationKey(ctx, t, hc, az.AccountURL(), tok, q)
	if got, want := q.Get("sig"), azuritetest.UDKSignature(key, azurite.Account, "output", "videos/a.mp3", q, true); got != want {
		t.Fatalf("link sig=: got %s, want %s (HMAC-SHA256 of the sv=%s string-to-sign under the delegation key)", got, want, q.Get("sv"))
	}
	// An Azurite before 3.37.0 verifies the 2025-07-05 string-to-sign
	// only (docs/status-page.md): it is given the link re-signed that way,
	// every field as ffpipe signed it, so it still enforces them.
	version, err := azuritetest.Version(ctx, hc, az.AccountURL())
	if err != nil {
		t.Fatal(err)
	}
	resign := azuritetest.LegacyUDKLayout(version)
	if resign {
		if code, body := do(ctx, t, hc, http.MethodGet, link, ""); code != http.StatusForbidden {
			t.Errorf("Azurite %s with the link as signed: got %d, want 403 (its older string-to-sign): %s", version, code, body)
		}
		link = resigned(t, link, key)
		t.Logf("Azurite %s: testing the link re-signed with the 2025-07-05 string-to-sign", version)
	}

	type try struct {
		name, method, url string
		body              string
		wantStatus        int
		wantBody          string // the blob, or the error code refusing
	}
	moved := strings.Replace(link, url.QueryEscape(q.Get("se")), url.QueryEscape(se.Add(time.Hour).Format(time.RFC3339)), 1)
	if moved == link {
		t.Fatalf("se=%s not found in the link %s", q.Get("se"), link)
	}
	for _, tt := range []try{
		{name: "download", method: http.MethodGet, url: link, wantStatus: http.StatusOK, wantBody: "the output of a"},
		{name: "overwrite", method: http.MethodPut, url: link, body: "replaced", wantStatus: http.StatusForbidden, wantBody: "AuthorizationPermissionMismatch"},
		{name: "delete", method: http.MethodDelete, url: link, wantStatus: http.StatusForbidden, wantBody: "AuthorizationPermissionMismatch"},
		{name: "another blob of the container", method: http.MethodGet, url: withPath(t, link, "/output/videos/b.mp3"), wantStatus: http.StatusForbidden, wantBody: "AuthorizationFailure"},
		{name: "the same name in another container", method: http.MethodGet, url: withPath(t, link, "/input/videos/a.mp3"), wantStatus: http.StatusForbidden, wantBody: "AuthorizationFailure"},
		{name: "expiry moved an hour later", method: http.MethodGet, url: moved, wantStatus: http.StatusForbidden, wantBody: "AuthorizationFailure"},
		{name: "download after the refusals", method: http.MethodGet, url: link, wantStatus: http.StatusOK, wantBody: "the output of a"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(ctx, t, hc, tt.method, tt.url, tt.body)
			if code != tt.wantStatus {
				t.Fatalf("%s: got %d, want %d: %s", tt.method, code, tt.wantStatus, body)
			}
			if tt.wantStatus == http.StatusOK && body != tt.wantBody {
				t.Errorf("%s: got body %q, want %q", tt.method, body, tt.wantBody)
			}
			if tt.wantStatus != http.StatusOK && !strings.Contains(body, "<Code>"+tt.wantBody+"</Code>") {
				t.Errorf("%s: got %s, want error code %s", tt.method, body, tt.wantBody)
			}
		})
	}

	// A link signed by a clock 20 minutes behind expired 5 minutes ago:
	// same code path, same TTL, refused.
	old := newStore(func() time.Time { return time.Now().Add(-downloadTTL - 5*time.Minute) })
	expired := pageLink(old)
	_, eq := parseLink(t, expired)
	if ese := signedTime(t, eq, "se"); !ese.Before(time.Now()) {
		t.Fatalf("link of the slow clock: se=%s is not past", eq.Get("se"))
	}
	ekey := delegationKey(ctx, t, hc, az.AccountURL(), tok, eq)
	if got, want := eq.Get("sig"), azuritetest.UDKSignature(ekey, azurite.Account, "output", "videos/a.mp3", eq, true); got != want {
		t.Fatalf("expired link sig=: got %s, want %s", got, want)
	}
	if resign {
		expired = resigned(t, expired, ekey)
	}
	if code, body := do(ctx, t, hc, http.MethodGet, expired, ""); code != http.StatusForbidden || !strings.Contains(body, "AuthorizationFailure") {
		t.Errorf("GET with a link past se=: got %d, want 403 AuthorizationFailure: %s", code, body)
	}
}

func parseLink(t *testing.T, link string) (*url.URL, url.Values) {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatalf("link %q: %v", link, err)
	}
	return u, u.Query()
}

// withPath is link's query on another blob of the account.
func withPath(t *testing.T, link, path string) string {
	t.Helper()
	u, _ := parseLink(t, link)
	u.Path, u.RawPath = path, ""
	return u.String()
}

func signedTime(t *testing.T, q url.Values, k string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, q.Get(k))
	if err != nil {
		t.Fatalf("link %s=%q: %v", k, q.Get(k), err)
	}
	return v
}

// delegationKey is the key of the link's principal and window (skt=,
// ske=), as Azurite issues it.
func delegationKey(ctx context.Context, t *testing.T, hc *http.Client, serviceURL string, tok azuritetest.Token, q url.Values) []byte {
	t.Helper()
	key, oid, err := azuritetest.DelegationKey(ctx, hc, serviceURL, tok, q.Get("skt"), q.Get("ske"))
	if err != nil {
		t.Fatal(err)
	}
	if oid != azuritetest.TestOID {
		t.Errorf("user delegation key SignedOid: got %q, want the token's oid %q", oid, azuritetest.TestOID)
	}
	return key
}

func resigned(t *testing.T, link string, key []byte) string {
	t.Helper()
	l, err := azuritetest.Resign(link, "", key)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func do(ctx context.Context, t *testing.T, hc *http.Client, method, link, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, link, r)
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodPut {
		req.Header.Set("x-ms-blob-type", "BlockBlob")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
