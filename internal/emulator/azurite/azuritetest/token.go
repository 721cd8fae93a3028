package azuritetest

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Token is an azcore.TokenCredential that hands out Entra-shaped access
// tokens (JWTs) of its own making, for Azurite started with StartOAuth.
// Azurite's basic OAuth (BlobTokenAuthenticator.authenticateBasic in
// node_modules/azurite/dist/src/blob/authentication) decodes the token
// without verifying its signature and requires iat, nbf and exp with nbf ≤
// now ≤ exp, an issuer beginning https://sts.windows.net/ (or another
// Entra cloud's) and a storage audience (https://storage.azure.com or
// https://<account>.blob.core.windows.net); Get User Delegation Key takes
// the key's signed object and tenant ids from the token's oid and tid.
// The zero value makes a valid token; the fields override its claims.
type Token struct {
	// OID and TID are the principal's object id and tenant id.
	OID, TID string
	// Audience and Issuer default to https://storage.azure.com and
	// https://sts.windows.net/<TID>/.
	Audience, Issuer string
	// Life is how long a token is valid from now (default an hour); a
	// negative Life makes a token that has already expired.
	Life time.Duration
	// Now replaces time.Now.
	Now func() time.Time
}

// Default principal of a Token.
const (
	TestOID = "8a4e1c3b-7f26-4d0e-9b1a-2c5d6e7f8091"
	TestTID = "3f9d2b71-5a6c-4e8f-b0d1-9e2a7c4b6d53"
)

var _ azcore.TokenCredential = Token{}

// GetToken returns a signed-looking JWT with the configured claims.
func (t Token) GetToken(_ context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	now := time.Now()
	if t.Now != nil {
		now = t.Now()
	}
	life := t.Life
	if life == 0 {
		life = time.Hour
	}
	oid, tid := t.OID, t.TID
	if oid == "" {
		oid = TestOID
	}
	if tid == "" {
		tid = TestTID
	}
	aud, iss := t.Audience, t.Issuer
	if aud == "" {
		aud = "https://storage.azure.com"
	}
	if iss == "" {
		iss = "https://sts.windows.net/" + tid + "/"
	}
	exp := now.Add(life)
	start := now.Add(-5 * time.Minute) // issued a little earlier, as Entra does
	if exp.Before(start) {
		start = exp.Add(-time.Hour)
	}
	claims := map[string]any{
		"aud": aud, "iss": iss, "oid": oid, "tid": tid, "sub": oid,
		"iat": start.Unix(), "nbf": start.Unix(), "exp": exp.Unix(), "ver": "1.0",
	}
	tok, err := jwt(claims)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: exp}, nil
}

// jwt encodes claims as a compact JWS signed with HS256 under a random key
// nobody keeps: Azurite does not check signatures, and nothing else may
// accept the token.
func jwt(claims map[string]any) (string, error) {
	enc := base64.RawURLEncoding
	h, err := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	if err != nil {
		return "", err
	}
	p, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	s := enc.EncodeToString(h) + "." + enc.EncodeToString(p)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return s + "." + enc.EncodeToString(m.Sum(nil)), nil
}
