package azuritetest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
)

// DelegationKey asks Azurite for the user delegation key of tok's principal
// over [start, expiry] (RFC 3339 strings, as a SAS's skt= and ske= carry
// them) with a plain REST call, Get User Delegation Key, and returns its
// value and signed object id. Azurite derives the value from the principal,
// the window and its service version, so it is the key a SAS with those
// fields was signed with.
func DelegationKey(ctx context.Context, hc *http.Client, serviceURL string, tok Token, start, expiry string) (key []byte, oid string, err error) {
	at, err := tok.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
	if err != nil {
		return nil, "", err
	}
	body := `<?xml version="1.0" encoding="utf-8"?><KeyInfo><Start>` + start + `</Start><Expiry>` + expiry + `</Expiry></KeyInfo>`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(serviceURL, "/")+"/?restype=service&comp=userdelegationkey", strings.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Authorization", "Bearer "+at.Token)
	req.Header.Set("x-ms-version", "2025-11-05")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("get user delegation key: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("get user delegation key: %d %s", resp.StatusCode, raw)
	}
	var k struct {
		OID   string `xml:"SignedOid"`
		Value string `xml:"Value"`
	}
	if err := xml.Unmarshal(raw, &k); err != nil {
		return nil, "", fmt.Errorf("user delegation key %s: %w", raw, err)
	}
	v, err := base64.StdEncoding.DecodeString(k.Value)
	if err != nil {
		return nil, "", fmt.Errorf("user delegation key value %q: %w", k.Value, err)
	}
	return v, k.OID, nil
}

// UDKSignature is the user delegation SAS signature of a blob SAS's fields
// q for account/cont/blob. withRequestFields selects the string-to-sign of
// service version 2026-04-06 and later, which adds the signed request
// headers and query parameters (srh, srq; none here) after the encryption
// scope; without it, the 2025-07-05 one. Field order: azblob v1.8.1
// sas.BlobSignatureValues.SignWithUserDelegation (sas/service.go) and
// Azurite's generateBlobSASSignatureWithUDK (IBlobSASSignatureValues.js).
func UDKSignature(key []byte, account, cont, blob string, q url.Values, withRequestFields bool) string {
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

// Version is the running Azurite's version, from its Server header
// ("Azurite-Blob/3.35.0") on any answer.
func Version(ctx context.Context, hc *http.Client, serviceURL string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(serviceURL, "/")+"/?comp=list", nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	v, ok := strings.CutPrefix(resp.Header.Get("Server"), "Azurite-Blob/")
	if !ok {
		return "", fmt.Errorf("server %q is not Azurite's blob service", resp.Header.Get("Server"))
	}
	return v, nil
}

// LegacyUDKLayout reports whether Azurite version verifies every user
// delegation SAS of sv=2025-07-05 or later with the 2025-07-05
// string-to-sign: versions before 3.37.0 do, so they refuse azblob v1.8.1's
// sv=2026-12-06 signatures (docs/status-page.md).
func LegacyUDKLayout(version string) bool {
	return olderThan(version, "3.37.0")
}

// Resign replaces the signature of a blob SAS URL on this Azurite's
// production-style endpoint (azurite.AccountHost; a container URL names
// its blob in blob) with the 2025-07-05 one under key, every signed field
// unchanged: what a LegacyUDKLayout Azurite verifies.
func Resign(link, blob string, key []byte) (string, error) {
	u, err := url.Parse(link)
	if err != nil {
		return "", err
	}
	q := u.Query()
	cont, name, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if blob != "" {
		name = blob
	}
	q.Set("sig", UDKSignature(key, azurite.Account, cont, name, q, false))
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// olderThan compares dotted versions numerically.
func olderThan(v, than string) bool {
	a, b := strings.Split(v, "."), strings.Split(than, ".")
	for i := range max(len(a), len(b)) {
		var x, y int
		if i < len(a) {
			x, _ = strconv.Atoi(a[i])
		}
		if i < len(b) {
			y, _ = strconv.Atoi(b[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}
