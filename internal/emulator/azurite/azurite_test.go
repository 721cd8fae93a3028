package azurite_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite/azuritetest"
)

// TestAzuriteRoundTrip: a blob written is read back, on disk and in
// memory; on disk it survives a restart, in memory it does not.
func TestAzuriteRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name          string
		opts          azurite.Options
		wantRestarted bool // the blob is still there after a restart
	}{
		{"on disk", azurite.Options{Dir: t.TempDir()}, true},
		{"in memory", azurite.Options{InMemory: true}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			s := azurite.New(tt.opts)
			if err := s.Start(ctx); err != nil {
				t.Fatalf("start: %v", err)
			}
			t.Cleanup(func() { _ = s.Close() })
			c, err := azblob.NewClientFromConnectionString(s.ConnectionString(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.CreateContainer(ctx, "input", nil); err != nil {
				t.Fatalf("create container: %v", err)
			}
			if _, err := c.UploadBuffer(ctx, "input", "a.mp4", []byte("hello"), nil); err != nil {
				t.Fatalf("upload: %v", err)
			}
			if got := readBlob(ctx, t, c); got != "hello" {
				t.Fatalf("got %q, want %q", got, "hello")
			}
			if err := s.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			if err := s.Start(ctx); err != nil {
				t.Fatalf("restart: %v", err)
			}
			c, err = azblob.NewClientFromConnectionString(s.ConnectionString(), nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.DownloadStream(ctx, "input", "a.mp4", nil)
			if got := err == nil; got != tt.wantRestarted {
				t.Fatalf("blob there after a restart: got %v (%v), want %v", got, err, tt.wantRestarted)
			}
		})
	}
}

func readBlob(ctx context.Context, t *testing.T, c *azblob.Client) string {
	t.Helper()
	resp, err := c.DownloadStream(ctx, "input", "a.mp4", nil)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	defer resp.Body.Close()
	buf := new(bytes.Buffer)
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestOptionsValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    azurite.Options
		want string
	}{
		{"certificate without key", azurite.Options{Dir: t.TempDir(), CertFile: "c.pem"}, "a certificate needs its key"},
		{"oauth over http", azurite.Options{Dir: t.TempDir(), OAuth: "basic"}, "needs HTTPS"},
		{"unknown oauth level", azurite.Options{Dir: t.TempDir(), CertFile: "c.pem", KeyFile: "k.pem", OAuth: "full"}, `knows only "basic"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := azurite.New(tt.o).Start(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("start: got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestOAuthTokens: Azurite with --oauth basic takes a bearer token only
// with a storage audience, an Entra issuer and a current lifetime, and it
// answers Get User Delegation Key for the token's principal.
func TestOAuthTokens(t *testing.T) {
	s, hc := azuritetest.StartOAuth(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tt := range []struct {
		name   string
		tok    azuritetest.Token
		wantOK bool
	}{
		{"valid", azuritetest.Token{}, true},
		{"account audience", azuritetest.Token{Audience: "https://" + azurite.Account + ".blob.core.windows.net"}, true},
		{"another account's audience", azuritetest.Token{Audience: "https://someoneelse.blob.core.windows.net"}, false},
		{"management audience", azuritetest.Token{Audience: "https://management.azure.com"}, false},
		{"foreign issuer", azuritetest.Token{Issuer: "https://login.example.com/tenant/"}, false},
		{"expired", azuritetest.Token{Life: -time.Minute}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := service.NewClient(s.AccountURL()+"/", tt.tok, &service.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: hc}})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC()
			_, err = c.GetUserDelegationCredential(ctx, service.KeyInfo{
				Start:  to.Ptr(now.Format(sas.TimeFormat)),
				Expiry: to.Ptr(now.Add(time.Hour).Format(sas.TimeFormat)),
			}, nil)
			if tt.wantOK && err != nil {
				t.Fatalf("get user delegation key: got %v, want a key", err)
			}
			if !tt.wantOK && !bloberror.HasCode(err, bloberror.AuthenticationFailed) {
				t.Fatalf("get user delegation key: got %v, want AuthenticationFailed", err)
			}
		})
	}
}
