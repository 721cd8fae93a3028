package handlers

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
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
	key := delegationKey(ctx, t, hc, az.AccountURL(), tok, q.Get("skt"), q.Get("ske"))
	if got, want := q.Get("sig"), udkSignature(key, "devstoreaccount1", "output", "videos/a.mp3", q, true); got != want {
		t.Fatalf("link sig=: got %s, want %s (HMAC-SHA256 of the sv=%s string-to-sign under the delegation key)", got, want, q.Get("sv"))
	}
	link = azuriteAccepted(ctx, t, hc, link, key)

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
	ekey := delegationKey(ctx, t, hc, az.AccountURL(), tok, eq.Get("skt"), eq.Get("ske"))
	if got, want := eq.Get("sig"), udkSignature(ekey, "devstoreaccount1", "output", "videos/a.mp3", eq, true); got != want {
		t.Fatalf("expired link sig=: got %s, want %s", got, want)
	}
	expired = resignFor(t, expired, ekey)
	if code, body := do(ctx, t, hc, http.MethodGet, expired, ""); code != http.StatusForbidden || !strings.Contains(body, "AuthorizationFailure") {
		t.Errorf("GET with a link past se=: got %d, want 403 AuthorizationFailure: %s", code, body)
	}
}

// policyScope is what azblob asks a credential for.
var policyScope = policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}}

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

// delegationKey asks Azurite for the user delegation key of tok's principal
// over [start, expiry] with a plain REST call (Get User Delegation Key) and
// returns its value. Azurite derives the value from the principal, the
// window and its service version, so it is the key the link was signed
// with.
func delegationKey(ctx context.Context, t *testing.T, hc *http.Client, base string, tok azuritetest.Token, start, expiry string) []byte {
	t.Helper()
	at, err := tok.GetToken(ctx, policyScope)
	if err != nil {
		t.Fatal(err)
	}
	body := "<?xml version=\"1.0\" encoding=\"utf-8\"?><KeyInfo><Start>" + start + "</Start><Expiry>" + expiry + "</Expiry></KeyInfo>"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/?restype=service&comp=userdelegationkey", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+at.Token)
	req.Header.Set("x-ms-version", "2025-11-05")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("get user delegation key: %d %s", resp.StatusCode, raw)
	}
	var k struct {
		OID   string `xml:"SignedOid"`
		Value string `xml:"Value"`
	}
	if err := xml.Unmarshal(raw, &k); err != nil {
		t.Fatalf("user delegation key %s: %v", raw, err)
	}
	if k.OID != azuritetest.TestOID {
		t.Errorf("user delegation key SignedOid: got %q, want the token's oid %q", k.OID, azuritetest.TestOID)
	}
	v, err := base64.StdEncoding.DecodeString(k.Value)
	if err != nil {
		t.Fatalf("user delegation key value %q: %v", k.Value, err)
	}
	return v
}

// udkSignature is the user delegation SAS signature of a blob link's
// fields. withRequestFields selects the string-to-sign of service version
// 2026-04-06 and later, which adds the signed request headers and query
// parameters (srh, srq: none here) after the encryption scope; without it,
// the 2025-07-05 one. Field order: the Go SDK's sas.BlobSignatureValues.
// SignWithUserDelegation (azblob v1.8.1 sas/service.go) and Azurite's
// generateBlobSASSignatureWithUDK20250705 (IBlobSASSignatureValues.js).
func udkSignature(key []byte, account, cont, blob string, q url.Values, withRequestFields bool) string {
	f := []string{q.Get("sp"), q.Get("st"), q.Get("se"), "/blob/" + account + "/" + cont + "/" + blob,
		q.Get("skoid"), q.Get("sktid"), q.Get("skt"), q.Get("ske"), q.Get("sks"), q.Get("skv"),
		q.Get("saoid"), q.Get("suoid"), q.Get("scid"), q.Get("skdutid"), q.Get("sduoid"),
		q.Get("sip"), q.Get("spr"), q.Get("sv"), q.Get("sr"), q.Get("snapshot"), q.Get("ses")}
	if withRequestFields {
		f = append(f, "", "") // srh, srq
	}
	f = append(f, q.Get("rscc"), q.Get("rscd"), q.Get("rsce"), q.Get("rscl"), q.Get("rsct"))
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strings.Join(f, "\n")))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// azuriteAccepted returns the link Azurite is to be tested with: the link
// itself when Azurite accepts it. Azurite before 3.37.0 verifies any sv= of
// 2025-07-05 or later with the 2025-07-05 string-to-sign, while azblob
// v1.8.1 signs sv=2026-12-06 with the srh and srq lines (checked above
// against the key): there the link is re-signed, every field kept, with the
// layout Azurite verifies, so Azurite still enforces ffpipe's permissions,
// resource, expiry and protocol.
func azuriteAccepted(ctx context.Context, t *testing.T, hc *http.Client, link string, key []byte) string {
	t.Helper()
	code, body := do(ctx, t, hc, http.MethodGet, link, "")
	if code == http.StatusOK {
		return link
	}
	v := azuriteVersion(t)
	if code != http.StatusForbidden || !olderThan(v, "3.37.0") {
		t.Fatalf("Azurite %s refuses the link as signed: %d %s", v, code, body)
	}
	t.Logf("Azurite %s verifies user delegation SAS with the 2025-07-05 string-to-sign: testing the link re-signed that way", v)
	return resignFor(t, link, key)
}

// resignFor re-signs link for Azurite when its version needs it.
func resignFor(t *testing.T, link string, key []byte) string {
	t.Helper()
	if !olderThan(azuriteVersion(t), "3.37.0") {
		return link
	}
	u, q := parseLink(t, link)
	cont, blob, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	old := url.QueryEscape(q.Get("sig"))
	return strings.Replace(link, "sig="+old, "sig="+url.QueryEscape(udkSignature(key, azurite.Account, cont, blob, q, false)), 1)
}

func azuriteVersion(t *testing.T) string {
	t.Helper()
	p, ok := azurite.FindInNodeModules("azurite/package.json")
	if !ok {
		t.Fatal("node_modules/azurite/package.json not found")
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct{ Version string }
	if err := json.Unmarshal(raw, &pkg); err != nil {
		t.Fatal(err)
	}
	return pkg.Version
}

// olderThan compares dotted versions numerically.
func olderThan(v, than string) bool {
	a, b := strings.Split(v, "."), strings.Split(than, ".")
	for i := range max(len(a), len(b)) {
		var x, y int
		if i < len(a) {
			fmt.Sscan(a[i], &x)
		}
		if i < len(b) {
			fmt.Sscan(b[i], &y)
		}
		if x != y {
			return x < y
		}
	}
	return false
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
