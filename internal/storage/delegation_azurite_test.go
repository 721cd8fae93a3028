package storage

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
	"github.com/ffpipe/ffpipe/internal/emulator/azurite/azuritetest"
)

// TestUserDelegationSASOnAzurite uses the task URLs Dispatch signs with
// taskBlobAccess=sas (ReadURL for the input, ContainerWriteURL for the
// output and logs, to which Batch appends the blob's path) as Batch does,
// against Azurite with bearer tokens: each allows its one blob and
// operation and nothing else. An Azurite before 3.37.0 is given each URL
// re-signed with the string-to-sign it verifies (docs/status-page.md);
// the signature as made is checked against the key first.
func TestUserDelegationSASOnAzurite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	az, hc := azuritetest.StartOAuth(t)
	tok := azuritetest.Token{}
	c, err := NewWithCredential(az.AccountURL(), tok, Options{ClientOptions: &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: hc}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, cont := range []string{"input", "output", "logs"} {
		if err := c.EnsureContainer(ctx, cont); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"in/a.mp4", "in/b.mp4"} {
		if err := c.Put(ctx, "input", name, []byte("input bytes of "+name), "video/mp4", nil); err != nil {
			t.Fatal(err)
		}
	}
	version, err := azuritetest.Version(ctx, hc, az.AccountURL())
	if err != nil {
		t.Fatal(err)
	}
	// forAzurite checks a URL's signature (for blob, the one it signs) and
	// returns what this Azurite verifies.
	forAzurite := func(t *testing.T, link, blob string) string {
		t.Helper()
		u, err := url.Parse(link)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		key, _, err := azuritetest.DelegationKey(ctx, hc, az.AccountURL(), tok, q.Get("skt"), q.Get("ske"))
		if err != nil {
			t.Fatal(err)
		}
		cont, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if got, want := q.Get("sig"), azuritetest.UDKSignature(key, azurite.Account, cont, blob, q, true); got != want {
			t.Fatalf("sig= of %s: got %s, want %s", link, got, want)
		}
		if !azuritetest.LegacyUDKLayout(version) {
			return link
		}
		if link, err = azuritetest.Resign(link, blob, key); err != nil {
			t.Fatal(err)
		}
		return link
	}
	read, err := c.ReadURL(ctx, "input", "in/a.mp4", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.ContainerWriteURL(ctx, "output", "out/a.mp3", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	read, out = forAzurite(t, read, "in/a.mp4"), forAzurite(t, out, "out/a.mp3")
	// at is Batch's use of a container URL: the blob's path goes after it.
	at := func(containerURL, blob string) string {
		base, q, _ := strings.Cut(containerURL, "?")
		return base + "/" + blob + "?" + q
	}
	for _, tt := range []struct {
		name, method, url, body string
		want                    int
	}{
		{"read the input", http.MethodGet, read, "", http.StatusOK},
		{"write the input", http.MethodPut, read, "x", http.StatusForbidden},
		{"read another input", http.MethodGet, onPath(t, read, "/input/in/b.mp4"), "", http.StatusForbidden},
		{"write the output", http.MethodPut, at(out, "out/a.mp3"), "mp3 bytes", http.StatusCreated},
		{"overwrite the output", http.MethodPut, at(out, "out/a.mp3"), "mp3 bytes again", http.StatusCreated},
		{"read the output", http.MethodGet, at(out, "out/a.mp3"), "", http.StatusForbidden},
		{"write another output", http.MethodPut, at(out, "out/b.mp3"), "x", http.StatusForbidden},
		{"write the container", http.MethodPut, out + "&restype=container", "", http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequestWithContext(ctx, tt.method, tt.url, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("x-ms-blob-type", "BlockBlob")
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("%s %s: got %d, want %d: %s", tt.method, tt.url, resp.StatusCode, tt.want, b)
			}
		})
	}
	if got, err := c.Get(ctx, "output", "out/a.mp3"); err != nil || string(got) != "mp3 bytes again" {
		t.Errorf("output after the writes: got %q, %v, want %q", got, err, "mp3 bytes again")
	}
}

// onPath is link's query on another path of the account.
func onPath(t *testing.T, link, path string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	u.Path, u.RawPath = path, ""
	return u.String()
}
