package storage

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite/azuritetest"
)

func newAzurite(t *testing.T) *Client {
	t.Helper()
	s := azuritetest.Start(t)
	c, err := NewFromConnectionString(s.ConnectionString(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"input", "output", "quarantine"} {
		if err := c.EnsureContainer(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	// Twice: idempotent.
	if err := c.EnsureContainer(ctx, "input"); err != nil {
		t.Fatalf("EnsureContainer again: %v", err)
	}
	return c
}

func TestAgainstAzurite(t *testing.T) {
	c := newAzurite(t)
	ctx := context.Background()

	t.Run("put get properties tail list", func(t *testing.T) {
		data := []byte("line1\nline2\nline3\n")
		if err := c.Put(ctx, "input", "dir/a.mp4", data, "video/mp4", map[string]string{"state": "x"}); err != nil {
			t.Fatal(err)
		}
		got, err := c.Get(ctx, "input", "dir/a.mp4")
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get: got %q, %v; want %q", got, err, data)
		}
		p, err := c.Properties(ctx, "input", "dir/a.mp4")
		if err != nil {
			t.Fatal(err)
		}
		if p.Size != int64(len(data)) || p.ETag == "" || strings.Contains(p.ETag, `"`) || p.Metadata["state"] != "x" {
			t.Errorf("Properties: got %+v", p)
		}
		tail, err := c.Tail(ctx, "input", "dir/a.mp4", 6)
		if err != nil || string(tail) != "line3\n" {
			t.Errorf("Tail: got %q, %v; want %q", tail, err, "line3\n")
		}
		var names []string
		if err := c.List(ctx, "input", "dir/", func(it Item) bool { names = append(names, it.Name+":"+it.Metadata["state"]); return true }); err != nil {
			t.Fatal(err)
		}
		if strings.Join(names, ",") != "dir/a.mp4:x" {
			t.Errorf("List: got %v", names)
		}
		if err := c.List(ctx, "nosuchcontainer", "", func(Item) bool { return true }); err != nil {
			t.Errorf("List of a missing container: got %v, want nil", err)
		}
		if _, err := c.Properties(ctx, "input", "missing.mp4"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Properties(missing): got %v, want ErrNotFound", err)
		}
	})

	t.Run("delete if match", func(t *testing.T) {
		if err := c.Put(ctx, "input", "d.mp4", []byte("v1"), "video/mp4", nil); err != nil {
			t.Fatal(err)
		}
		p1, _ := c.Properties(ctx, "input", "d.mp4")
		if err := c.Put(ctx, "input", "d.mp4", []byte("v2"), "video/mp4", nil); err != nil {
			t.Fatal(err)
		}
		p2, _ := c.Properties(ctx, "input", "d.mp4")
		if err := c.DeleteIfMatch(ctx, "input", "d.mp4", p1.ETag); !errors.Is(err, ErrConditionNotMet) {
			t.Fatalf("DeleteIfMatch(old eTag): got %v, want ErrConditionNotMet", err)
		}
		if _, err := c.Properties(ctx, "input", "d.mp4"); err != nil {
			t.Fatalf("blob deleted despite eTag mismatch: %v", err)
		}
		if err := c.DeleteIfMatch(ctx, "input", "d.mp4", `"`+p2.ETag+`"`); err != nil {
			t.Fatalf("DeleteIfMatch(current, quoted): %v", err)
		}
		if err := c.DeleteIfMatch(ctx, "input", "d.mp4", p2.ETag); !errors.Is(err, ErrNotFound) {
			t.Fatalf("DeleteIfMatch again: got %v, want ErrNotFound", err)
		}
	})

	t.Run("move to quarantine is idempotent", func(t *testing.T) {
		if err := c.Put(ctx, "input", "bad/x.mp4", []byte("garbage"), "video/mp4", nil); err != nil {
			t.Fatal(err)
		}
		p, _ := c.Properties(ctx, "input", "bad/x.mp4")
		for i := range 2 {
			if err := c.Move(ctx, "input", "bad/x.mp4", p.ETag, "quarantine", "bad/x.mp4"); err != nil {
				t.Fatalf("Move #%d: %v", i+1, err)
			}
		}
		if _, err := c.Properties(ctx, "input", "bad/x.mp4"); !errors.Is(err, ErrNotFound) {
			t.Errorf("source after move: got %v, want ErrNotFound", err)
		}
		got, err := c.Get(ctx, "quarantine", "bad/x.mp4")
		if err != nil || string(got) != "garbage" {
			t.Errorf("quarantine copy: got %q, %v", got, err)
		}
		// A changed source is not moved.
		_ = c.Put(ctx, "input", "bad/y.mp4", []byte("v1"), "video/mp4", nil)
		if err := c.Move(ctx, "input", "bad/y.mp4", "0x0000", "quarantine", "bad/y.mp4"); !errors.Is(err, ErrConditionNotMet) {
			t.Errorf("Move with stale eTag: got %v, want ErrConditionNotMet", err)
		}
	})

	t.Run("sas urls grant exactly one blob", func(t *testing.T) {
		_ = c.Put(ctx, "input", "in.mp4", []byte("input bytes"), "video/mp4", nil)
		_ = c.Put(ctx, "input", "other.mp4", []byte("other"), "video/mp4", nil)
		read, err := c.ReadURL(ctx, "input", "in.mp4", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		write, err := c.WriteURL(ctx, "output", "out/in.mp3", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		contURL, err := c.ContainerWriteURL(ctx, "output", "out/in.mp3", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		logs, err := c.ContainerWriteURL(ctx, "output", "k/stderr.txt", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name, method, url string
			want              int
		}{
			{"logs: write its one blob", http.MethodPut, appendPath(logs, "k/stderr.txt"), http.StatusCreated},
			{"logs: not the other log", http.MethodPut, appendPath(logs, "k/stdout.txt"), http.StatusForbidden},
			{"logs: no read", http.MethodGet, appendPath(logs, "k/stderr.txt"), http.StatusForbidden},
			{"read input", http.MethodGet, read, http.StatusOK},
			{"read other blob with input sas", http.MethodGet, swapBlob(read, "other.mp4"), http.StatusForbidden},
			{"write with read sas", http.MethodPut, read, http.StatusForbidden},
			{"write output", http.MethodPut, write, http.StatusCreated},
			{"write other blob with output sas", http.MethodPut, swapBlob(write, "out/evil.mp3"), http.StatusForbidden},
			{"read output with write sas", http.MethodGet, write, http.StatusForbidden},
			{"container url + path (Batch style)", http.MethodPut, appendPath(contURL, "out/in.mp3"), http.StatusCreated},
			{"container url + other path", http.MethodPut, appendPath(contURL, "out/other.mp3"), http.StatusForbidden},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				req, _ := http.NewRequestWithContext(ctx, tt.method, tt.url, strings.NewReader("data"))
				if tt.method == http.MethodPut {
					req.Header.Set("x-ms-blob-type", "BlockBlob")
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tt.want {
					t.Errorf("%s: got HTTP %d, want %d", tt.name, resp.StatusCode, tt.want)
				}
			})
		}
	})
}

func swapBlob(u, name string) string {
	p, _ := url.Parse(u)
	parts := strings.SplitN(strings.TrimPrefix(p.Path, "/"), "/", 3) // account/container/blob
	p.Path = "/" + parts[0] + "/" + parts[1] + "/" + name
	return p.String()
}

func appendPath(containerURL, name string) string {
	p, _ := url.Parse(containerURL)
	p.Path = strings.TrimRight(p.Path, "/") + "/" + name
	return p.String()
}

func TestSASScope(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	c, err := NewFromConnectionString("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5a2V5a2V5a2V5;EndpointSuffix=core.windows.net", Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	read, _ := c.ReadURL(ctx, "input", "videos/a b.mp4", 2*time.Hour)
	write, _ := c.WriteURL(ctx, "output", "videos/a b.mp3", 2*time.Hour)
	cont, _ := c.ContainerWriteURL(ctx, "output", "videos/a b.mp3", 2*time.Hour)
	logs, _ := c.ContainerWriteURL(ctx, "logs", "k/stderr.txt", 2*time.Hour)
	tests := []struct {
		name, url, path, sp string
	}{
		{"logs (one log blob)", logs, "/logs", "cw"},
		{"read", read, "/input/videos/a b.mp4", "r"},
		{"write", write, "/output/videos/a b.mp3", "cw"},
		{"container write", cont, "/output", "cw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if u.Host != "acct.blob.core.windows.net" || u.Path != tt.path {
				t.Errorf("url: got %s%s, want acct.blob.core.windows.net%s", u.Host, u.Path, tt.path)
			}
			q := u.Query()
			// Every SAS ffpipe makes covers exactly one blob.
			checks := map[string]string{"sp": tt.sp, "sr": "b", "spr": "https", "se": "2026-03-01T11:00:00Z", "st": "2026-03-01T08:55:00Z"}
			for k, want := range checks {
				if got := q.Get(k); got != want {
					t.Errorf("%s: got %q, want %q", k, got, want)
				}
			}
			if q.Get("sig") == "" {
				t.Errorf("no signature")
			}
			if q.Get("srt") != "" || q.Get("ss") != "" {
				t.Errorf("account SAS fields present: %v", q)
			}
		})
	}
	if _, err := c.ReadURL(ctx, "input", "a.mp4", 0); err == nil {
		t.Errorf("ReadURL with zero ttl: got nil error")
	}
}

func TestPutIfAgainstAzurite(t *testing.T) {
	c := newAzurite(t)
	ctx := context.Background()
	if err := c.PutIf(ctx, "input", "r", []byte("v1"), "application/json", nil, ""); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := c.PutIf(ctx, "input", "r", []byte("v1b"), "application/json", nil, ""); !errors.Is(err, ErrConditionNotMet) {
		t.Fatalf("create again: got %v, want ErrConditionNotMet", err)
	}
	b, etag, err := c.GetWithETag(ctx, "input", "r")
	if err != nil || string(b) != "v1" || etag == "" {
		t.Fatalf("GetWithETag: got %q %q %v", b, etag, err)
	}
	if err := c.PutIf(ctx, "input", "r", []byte("v2"), "application/json", nil, etag); err != nil {
		t.Fatalf("replace with current eTag: %v", err)
	}
	if err := c.PutIf(ctx, "input", "r", []byte("v3"), "application/json", nil, etag); !errors.Is(err, ErrConditionNotMet) {
		t.Fatalf("replace with stale eTag: got %v, want ErrConditionNotMet", err)
	}
	if b, _ := c.Get(ctx, "input", "r"); string(b) != "v2" {
		t.Errorf("content: got %q, want v2", b)
	}
}

// FuzzSASBuilder (docs/reliability.md#fuzz-targets): for any container, blob name
// and lifetime, a read SAS grants exactly read on exactly that blob, a write
// SAS exactly create and write on exactly that blob, and no SAS outlives the
// cap.
func FuzzSASBuilder(f *testing.F) {
	f.Add("input", "videos/a b.mp4", int64(2*time.Hour))
	f.Add("output", "../../etc/passwd", int64(time.Second))
	f.Add("logs", "k/stderr.txt", int64(8*24*time.Hour))
	f.Add("x", "a?sp=rwdl&sig=x", int64(-1))
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	c, err := NewFromConnectionString("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5a2V5a2V5a2V5;EndpointSuffix=core.windows.net", Options{Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cont, name string, ttlNs int64) {
		if cont == "" || name == "" {
			return
		}
		ttl := time.Duration(ttlNs)
		for _, tc := range []struct {
			kind, sp string
			sign     func() (string, error)
		}{
			{"read", "r", func() (string, error) { return c.ReadURL(context.Background(), cont, name, ttl) }},
			{"write", "cw", func() (string, error) { return c.ContainerWriteURL(context.Background(), cont, name, ttl) }},
		} {
			raw, err := tc.sign()
			if ttl <= 0 || ttl > MaxSASLifetime {
				if err == nil {
					t.Fatalf("%s SAS with ttl %v: got no error", tc.kind, ttl)
				}
				continue
			}
			if err != nil {
				continue // names the SDK cannot sign are refused, not widened
			}
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("%s SAS is not a URL: %v", tc.kind, err)
			}
			q := u.Query()
			if q.Get("sp") != tc.sp || q.Get("sr") != "b" || q.Get("srt") != "" || q.Get("ss") != "" {
				t.Fatalf("%s SAS scope: sp=%q sr=%q srt=%q ss=%q, want sp=%s sr=b", tc.kind, q.Get("sp"), q.Get("sr"), q.Get("srt"), q.Get("ss"), tc.sp)
			}
			se, err := time.Parse(time.RFC3339, q.Get("se"))
			if err != nil || se.After(now.Add(MaxSASLifetime)) || se.After(now.Add(ttl).Add(time.Second)) {
				t.Fatalf("%s SAS expiry %q for ttl %v", tc.kind, q.Get("se"), ttl)
			}
		}
	})
}

// countingTransport counts the requests a Client sends.
type countingTransport struct{ n int }

func (c *countingTransport) Do(r *http.Request) (*http.Response, error) {
	c.n++
	return http.DefaultClient.Do(r)
}

// TestTailAgainstAzurite: Tail returns the last n bytes in one request for
// a blob of at most n bytes (a result file) and two for a longer one.
func TestTailAgainstAzurite(t *testing.T) {
	s := azuritetest.Start(t)
	ct := &countingTransport{}
	c, err := NewFromConnectionString(s.ConnectionString(), Options{ClientOptions: &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: ct}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.EnsureContainer(ctx, "logs"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		data      string // "" with missing: no blob
		missing   bool
		n         int64
		want      string
		wantCalls int
	}{
		{name: "shorter than n", data: "ok\n", n: 4096, want: "ok\n", wantCalls: 1},
		{name: "exactly n", data: "abcdef", n: 6, want: "abcdef", wantCalls: 1},
		{name: "longer than n", data: "line1\nline2\nline3\n", n: 6, want: "line3\n", wantCalls: 2},
		{name: "one byte longer", data: "abcdefg", n: 6, want: "bcdefg", wantCalls: 2},
		{name: "empty", data: "", n: 4096, want: "", wantCalls: 1},
		{name: "missing", missing: true, n: 4096, wantCalls: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blob := strings.ReplaceAll(tc.name, " ", "-")
			if !tc.missing {
				if err := c.Put(ctx, "logs", blob, []byte(tc.data), "text/plain", nil); err != nil {
					t.Fatal(err)
				}
			}
			ct.n = 0
			got, err := c.Tail(ctx, "logs", blob, tc.n)
			if tc.missing {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("Tail of a missing blob: got %v, want ErrNotFound", err)
				}
			} else if err != nil || string(got) != tc.want {
				t.Errorf("Tail: got %q, %v; want %q", got, err, tc.want)
			}
			if ct.n != tc.wantCalls {
				t.Errorf("requests: got %d, want %d", ct.n, tc.wantCalls)
			}
		})
	}
}

func TestRangeSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"bytes 0-99/1234", 1234, true},
		{"bytes 0-0/1", 1, true},
		{"bytes */0", 0, true},
		{"bytes 0-99/*", 0, false},
		{"bytes 0-99", 0, false},
		{"bytes 0-99/-5", 0, false},
	} {
		got, err := rangeSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("rangeSize(%q): got %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzRangeSize: any Content-Range value gives a size ≥ 0 or an error,
// never a panic.
func FuzzRangeSize(f *testing.F) {
	for _, s := range []string{"bytes 0-99/1234", "bytes */0", "bytes 0-1/", "/", "bytes 0-1/9223372036854775808"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := rangeSize(s); err == nil && n < 0 {
			t.Fatalf("rangeSize(%q): got %d, want ≥ 0", s, n)
		}
	})
}
