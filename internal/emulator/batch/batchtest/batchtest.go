// Package batchtest starts a private local Batch stand-in for one test and
// builds azbatch clients for it.
package batchtest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/ffpipe/ffpipe/internal/emulator/batch"
)

// Start runs a batch.Server with opts for the duration of t (Close in
// t.Cleanup). Without a Logger, warnings and errors go to the test log.
func Start(t testing.TB, opts batch.Options) *batch.Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	s := batch.New(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("batch emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close batch emulator: %v", err)
		}
	})
	return s
}

// Credential is a static azcore.TokenCredential returning token.
type Credential string

// GetToken implements azcore.TokenCredential.
func (c Credential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(c), ExpiresOn: time.Now().Add(24 * time.Hour)}, nil
}

// Client returns an azbatch client for s with its token over plain HTTP.
func Client(t testing.TB, s *batch.Server) *azbatch.Client {
	t.Helper()
	return ClientWithToken(t, s.URL(), s.Token())
}

// ClientWithToken returns an azbatch client for endpoint with a static
// bearer token (InsecureAllowCredentialWithHTTP, retries kept short).
func ClientWithToken(t testing.TB, endpoint, token string) *azbatch.Client {
	t.Helper()
	c, err := azbatch.NewClient(endpoint, Credential(token), &azbatch.ClientOptions{ClientOptions: azcore.ClientOptions{
		InsecureAllowCredentialWithHTTP: true,
		Retry:                           policy.RetryOptions{MaxRetries: 2, RetryDelay: 50 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond},
	}})
	if err != nil {
		t.Fatalf("azbatch client: %v", err)
	}
	return c
}
