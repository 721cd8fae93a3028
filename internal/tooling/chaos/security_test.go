package chaos_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite/azuritetest"
	"github.com/ffpipe/ffpipe/internal/storage"
)

// TestSASEnforcement checks docs/reliability.md#security-negative-tests "SAS and
// storage" against a real storage service (Azurite): the SAS URLs ffpipe
// hands to Batch tasks (internal/storage ReadURL, WriteURL,
// ContainerWriteURL) allow exactly their one job.
// internal/storage's TestSASScope checks the fields of the tokens; this
// test checks that the service refuses everything else with 403.
func TestSASEnforcement(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Azurite")
	}
	az := azuritetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := storage.NewFromConnectionString(az.ConnectionString(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cont := range []string{"input", "output", "logs"} {
		if err := c.EnsureContainer(ctx, cont); err != nil {
			t.Fatal(err)
		}
	}
	const in, other, out = "videos/a b.mp4", "videos/other.mp4", "videos/a b.mp3"
	for _, n := range []string{in, other} {
		if err := c.Put(ctx, "input", n, []byte("input "+n), "video/mp4", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Put(ctx, "output", "videos/someone-else.mp3", []byte("x"), "audio/mpeg", nil); err != nil {
		t.Fatal(err)
	}
	const ttl = time.Hour
	read, err := c.ReadURL(ctx, "input", in, ttl)
	if err != nil {
		t.Fatal(err)
	}
	write, err := c.WriteURL(ctx, "output", out, ttl)
	if err != nil {
		t.Fatal(err)
	}
	contWrite, err := c.ContainerWriteURL(ctx, "output", out, ttl)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := c.ContainerWriteURL(ctx, "logs", "k/stderr.txt", ttl)
	if err != nil {
		t.Fatal(err)
	}
	// A client whose clock is 3 h behind signs SAS that expired 2 h ago.
	past, err := storage.NewFromConnectionString(az.ConnectionString(), storage.Options{Now: func() time.Time { return time.Now().Add(-3 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := past.ReadURL(ctx, "input", in, ttl)
	if err != nil {
		t.Fatal(err)
	}

	blobPath := func(u, name string) string { // container URL + blob path, as Batch does
		base, q, _ := strings.Cut(u, "?")
		return base + "/" + (&url.URL{Path: name}).EscapedPath() + "?" + q
	}
	// The SDK escapes the whole blob name, "/" included.
	swapBlob := func(u, from, to string) string {
		if !strings.Contains(u, url.PathEscape(from)) {
			t.Fatalf("%s does not contain %s", u, url.PathEscape(from))
		}
		return strings.Replace(u, url.PathEscape(from), url.PathEscape(to), 1)
	}
	query := func(u, k, v string) string {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		q := pu.Query()
		q.Set(k, v)
		pu.RawQuery = q.Encode()
		return pu.String()
	}
	tamperSig := func(u string) string {
		pu, _ := url.Parse(u)
		sig := pu.Query().Get("sig")
		b := []byte(sig)
		if b[0] == 'A' {
			b[0] = 'B'
		} else {
			b[0] = 'A'
		}
		return query(u, "sig", string(b))
	}
	tests := []struct {
		name, method, url string
		want              int
	}{
		{"input SAS reads its blob", http.MethodGet, read, 200},
		{"input SAS cannot write", http.MethodPut, read, 403},
		{"input SAS cannot delete", http.MethodDelete, read, 403},
		{"input SAS names one blob only", http.MethodGet, swapBlob(read, in, other), 403},
		{"input SAS cannot list", http.MethodGet, strings.Replace(strings.Split(read, "?")[0], "/"+url.PathEscape(in), "", 1) + "?restype=container&comp=list&" + strings.Split(read, "?")[1], 403},
		{"tampered signature", http.MethodGet, tamperSig(read), 403},
		{"permissions widened (sp=rwd)", http.MethodDelete, query(read, "sp", "rwd"), 403},
		{"resource widened (sr=c)", http.MethodGet, query(read, "sr", "c"), 403},
		{"expired SAS", http.MethodGet, expired, 403},
		{"output SAS writes its blob", http.MethodPut, write, 201},
		{"output SAS cannot read", http.MethodGet, write, 403},
		{"output SAS cannot delete", http.MethodDelete, write, 403},
		{"output SAS cannot write another blob", http.MethodPut, swapBlob(write, out, "videos/someone-else.mp3"), 403},
		{"container output SAS writes the one blob", http.MethodPut, blobPath(contWrite, out), 201},
		{"container output SAS cannot write another blob", http.MethodPut, blobPath(contWrite, "videos/evil.mp3"), 403},
		{"container output SAS cannot list", http.MethodGet, contWrite + "&restype=container&comp=list", 403},
		{"logs SAS writes its one log blob", http.MethodPut, blobPath(logs, "k/stderr.txt"), 201},
		{"logs SAS cannot write the other log", http.MethodPut, blobPath(logs, "k/stdout.txt"), 403},
		{"logs SAS cannot read", http.MethodGet, blobPath(logs, "k/stderr.txt"), 403},
		{"logs SAS cannot list", http.MethodGet, logs + "&restype=container&comp=list", 403},
		{"logs SAS cannot delete", http.MethodDelete, blobPath(logs, "k/stderr.txt"), 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			req, err := http.NewRequestWithContext(ctx, tt.method, tt.url, body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.method == http.MethodPut {
				req, _ = http.NewRequestWithContext(ctx, tt.method, tt.url, bytes.NewReader([]byte("payload")))
				req.Header.Set("x-ms-blob-type", "BlockBlob")
			}
			req.Header.Set("x-ms-version", "2021-12-02")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s: got %d, want %d (%s)", tt.method, resp.StatusCode, tt.want, firstLine(b))
			}
		})
	}
	// Nothing above may have touched the other blobs.
	for _, n := range []string{in, other} {
		if _, err := c.Properties(ctx, "input", n); err != nil {
			t.Errorf("input %s: %v", n, err)
		}
	}
	if b, err := c.Get(ctx, "output", "videos/someone-else.mp3"); err != nil || string(b) != "x" {
		t.Errorf("someone else's output: got %q, %v; want it untouched", b, err)
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
