package handlers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/records"
)

// chromium is Debian's browser (make deps installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("FFPIPE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	t.Fatal("chromium is required for the status page test: run `make deps` (apt-get install chromium) or set FFPIPE_CHROMIUM")
	return ""
}

// TestStatusPageInBrowser loads the Status page in headless Chromium: the
// counts, a running file's progress bar, the last hour's throughput chart,
// the failures by reason and a download link, and saves a screenshot (FFPIPE_SCREENSHOT_DIR, or the
// test's temporary directory).
func TestStatusPageInBrowser(t *testing.T) {
	bin := chromium(t)
	e := newEnv(t, nil)
	for i, st := range []records.State{records.StateDone, records.StateDone, records.StateFailed, records.StateFailed, records.StateRejected} {
		key := strings.Repeat("0", 31) + string("abcde"[i])
		r := records.Record{Key: key, State: st, Source: records.Blob{Container: "input", Blob: "videos/f" + string("abcde"[i]) + ".mp4"}}
		switch st {
		case records.StateDone:
			r.Output = records.Blob{Container: "output", Blob: "videos/f" + string("abcde"[i]) + ".mp3", Size: 9}
		case records.StateFailed:
			r.Reason = "decode_error: exit code 65"
		case records.StateRejected:
			r.Reason = "empty: the input blob has no content"
		}
		putIndexed(t, e, r)
	}
	f := e.dispatched("videos/running.mp4")
	e.batch.mu.Lock()
	e.batch.running[f.key] = e.now.Add(-time.Minute)
	e.batch.progress = map[string]batch.Progress{f.key: {Percent: 40, DoneSeconds: 48, DurationSeconds: 120, ETA: 90 * time.Second}}
	e.batch.mu.Unlock()

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hr := e.status(statusEnvelope("http://"+r.Host+r.URL.String(), map[string]string{}, map[string][]string{"Accept": {"text/html"}}))
		for k, v := range hr.Headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(hr.StatusCode)
		_, _ = w.Write([]byte(hr.Body))
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/api/status?code=k"), chromedp.WaitVisible("#recent")); err != nil {
		t.Fatalf("chromium: load the page: %v", err)
	}
	text := func(sel string) string {
		s, err := chromedp.Run(bctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("chromium: text of %s: %v", sel, err)
		}
		return s
	}
	attr := func(sel, name string) string {
		a, err := chromedp.Run(bctx, chromedp.AttributeValue(sel, name))
		if err != nil {
			t.Fatalf("chromium: %s of %s: %v", name, sel, err)
		}
		return a.Value
	}
	counts, running, failures := text("table"), text("#running"), text("#failures")
	progress, link := attr("#running progress", "value"), attr("#recent a[href*='output']", "href")
	// The throughput chart as laid out: every bar's rendered height (the
	// five files ended in the current bin, the last bar), and the
	// failures table's rows as shown.
	bars, err := chromedp.Run(bctx, chromedp.Evaluate[[]float64](
		`Array.from(document.querySelectorAll('#throughput rect.bar')).map(r => r.getBoundingClientRect().height)`))
	if err != nil {
		t.Fatalf("chromium: throughput bars: %v", err)
	}
	chartWidth, err := chromedp.Run(bctx, chromedp.Evaluate[float64](`document.querySelector('#throughput').getBoundingClientRect().width`))
	if err != nil {
		t.Fatalf("chromium: throughput chart: %v", err)
	}
	reasons, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll('#failures tr[data-reason]')).map(r => r.innerText.replace(/\s+/g, ' ').trim())`))
	if err != nil {
		t.Fatalf("chromium: failures table: %v", err)
	}
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(90))
	if err != nil {
		t.Fatalf("chromium: screenshot: %v", err)
	}
	if fields := strings.Fields(counts); !strings.Contains(counts, "done") || !containsSeq(fields, []string{"0", "2", "2", "0", "0", "1"}) {
		t.Errorf("counts table: got %q, want queued 0 (a dispatched file is a task, not a record), done 2, failed 2, rejected 1", counts)
	}
	if progress != "40" || !strings.Contains(running, "videos/running.mp4") || !strings.Contains(running, "90 s left") {
		t.Errorf("running: got %q with a bar at %q, want videos/running.mp4 at 40 with 90 s left", running, progress)
	}
	if !strings.Contains(failures, "records of the last 90 days") || !slices.Equal(reasons, []string{"decode_error 2 2", "empty 1 1"}) {
		t.Errorf("failures by reason: got %q with rows %q, want decode_error 2 2 and empty 1 1 under the last 90 days and the latest records", failures, reasons)
	}
	wantBars := make([]float64, 12)
	wantBars[11] = 88 // all five ended now: the highest bar
	if !slices.Equal(bars, wantBars) || chartWidth <= 0 {
		t.Errorf("throughput chart: %v px wide with bar heights %v, want 12 bars %v", chartWidth, bars, wantBars)
	}
	if !strings.HasPrefix(link, fakeBase) {
		t.Errorf("download link: got %q, want a signed URL of the output", link)
	}
	dir := os.Getenv("FFPIPE_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "status-page.jpg")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(shot))
}

func containsSeq(s, seq []string) bool {
	for i := 0; i+len(seq) <= len(s); i++ {
		ok := true
		for j := range seq {
			if s[i+j] != seq[j] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
