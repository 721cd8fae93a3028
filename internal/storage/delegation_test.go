package storage

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

type staticToken struct{}

func (staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// keyService answers Get User Delegation Key like the blob service.
type keyService struct {
	mu    sync.Mutex
	calls int
}

func (k *keyService) Do(req *http.Request) (*http.Response, error) {
	k.mu.Lock()
	k.calls++
	k.mu.Unlock()
	if req.Method != http.MethodPost || req.URL.Query().Get("comp") != "userdelegationkey" {
		return &http.Response{StatusCode: 501, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}, Request: req}, nil
	}
	body := `<?xml version="1.0" encoding="utf-8"?><UserDelegationKey><SignedOid>11111111-1111-1111-1111-111111111111</SignedOid><SignedTid>22222222-2222-2222-2222-222222222222</SignedTid><SignedStart>2026-03-01T08:55:00Z</SignedStart><SignedExpiry>2026-03-02T09:00:00Z</SignedExpiry><SignedService>b</SignedService><SignedVersion>2024-08-04</SignedVersion><Value>a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=</Value></UserDelegationKey>`
	h := http.Header{}
	h.Set("Content-Type", "application/xml")
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(body)), Header: h, Request: req}, nil
}

func TestUserDelegationSAS(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	svc := &keyService{}
	c, err := NewWithCredential("https://acct.blob.core.windows.net/", staticToken{}, Options{
		Now:           func() time.Time { return now },
		ClientOptions: &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: svc}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Account() != "acct" {
		t.Errorf("account: got %q, want acct", c.Account())
	}
	ctx := context.Background()
	read, err := c.ReadURL(ctx, "input", "a.mp4", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	write, err := c.ContainerWriteURL(ctx, "output", "a.mp3", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if svc.calls != 1 {
		t.Errorf("delegation key requests: got %d, want 1 (cached)", svc.calls)
	}
	for _, tt := range []struct{ name, url, sp string }{{"read", read, "r"}, {"write", write, "cw"}} {
		u, _ := url.Parse(tt.url)
		q := u.Query()
		checks := map[string]string{"sp": tt.sp, "sr": "b", "spr": "https", "se": "2026-03-01T11:00:00Z",
			"skoid": "11111111-1111-1111-1111-111111111111", "sktid": "22222222-2222-2222-2222-222222222222"}
		for k, want := range checks {
			if got := q.Get(k); got != want {
				t.Errorf("%s %s: got %q, want %q", tt.name, k, got, want)
			}
		}
		if q.Get("sig") == "" {
			t.Errorf("%s: no signature", tt.name)
		}
	}
	// A SAS that would outlive the cached key fetches a new one.
	now = now.Add(23 * time.Hour)
	if _, err := c.ReadURL(ctx, "input", "a.mp4", 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	if svc.calls != 2 {
		t.Errorf("delegation key requests after 23 h: got %d, want 2", svc.calls)
	}
}
