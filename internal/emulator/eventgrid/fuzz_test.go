package eventgrid

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ffpipe/ffpipe/handlers"
	"github.com/ffpipe/ffpipe/internal/request"
)

// subjectOf builds the subject of a blob's event exactly as the stand-in
// does when it publishes.
func subjectOf(container, blob string) string {
	return (&Server{}).blobCreated(container, blobInfo{name: blob}, 1, time.Time{}).Subject
}

// FuzzSubjectRoundTrip: for every valid container and blob name, the
// subject the stand-in publishes parses back, with handlers.SubjectBlob,
// to exactly that container and blob, and to no other container (a name
// holding "/containers/x/blobs/" must not move the event to container x).
func FuzzSubjectRoundTrip(f *testing.F) {
	for _, s := range [][2]string{
		{"input", "a.mp4"},
		{"input", "Videos/2026/Clip One (final).MP4"},
		{"input", "dir/blobs/x.mp4"},
		{"input", "blobs/x.mp4"},
		{"in", "x"},
		{"input", "x/blobs/y/blobs/z.mp4"},
		{"input", "containers/output/blobs/evil.mp4"},
		{"input", "a/blobServices/default/containers/output/blobs/b.mp4"},
		{"a-b-c", "%2Fblobs%2F.mp4"},
		{"input", "ünïcødé/日本語.mp4"},
		{"input", "x\u202e4pm.exe"},
		{"0123456789012345678901234567890123456789012345678901234567890ab", "z"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, container, blob string) {
		if request.ValidateContainer(container) != nil || request.ValidateBlob(blob) != nil {
			return
		}
		subject := subjectOf(container, blob)
		c, b, ok := handlers.SubjectBlob(subject)
		if !ok || c != container || b != blob {
			t.Fatalf("SubjectBlob(%q) = %q, %q, %v; want %q, %q, true", subject, c, b, ok, container, blob)
		}
		// The same blob name in another container is never read as being
		// in this one.
		for _, other := range []string{"output", container + "x", "x" + container} {
			if c, _, ok := handlers.SubjectBlob(subjectOf(other, blob)); ok && c == container && other != container {
				t.Fatalf("subject of %q/%q parsed as container %q", other, blob, c)
			}
		}
	})
}

// FuzzSubjectBlobExact: whatever subject SubjectBlob accepts is exactly
// the stand-in's subject for the parts it returns, so there is one subject
// per (container, blob) and nothing else in a subject is ignored.
func FuzzSubjectBlobExact(f *testing.F) {
	for _, s := range []string{
		"/blobServices/default/containers/input/blobs/a.mp4",
		"/blobServices/default/containers/input/blobs/a/blobs/b.mp4",
		"/blobServices/default/containers/in/put/blobs/a.mp4",
		"/blobServices/default/containers/input/blobs/",
		"/blobServices/default/containers//blobs/a",
		"/BLOBSERVICES/default/containers/input/blobs/a.mp4",
		"/blobServices/default/containers/input/blobs//a.mp4",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		c, b, ok := handlers.SubjectBlob(subject)
		if !ok {
			return
		}
		if c == "" || b == "" || strings.Contains(c, "/") {
			t.Fatalf("SubjectBlob(%q) = %q, %q: empty part or container with a slash", subject, c, b)
		}
		if got := subjectOf(c, b); got != subject {
			t.Fatalf("SubjectBlob(%q) = %q, %q, which the stand-in publishes as %q", subject, c, b, got)
		}
	})
}

// FuzzSubscriptionMatches checks the subject filter of a subscription
// (subjectBeginsWith/subjectEndsWith, from flags or Options) against what
// Subscription documents: case-sensitive filters are exactly
// strings.HasPrefix and strings.HasSuffix; case-insensitive ones (the
// default) accept everything the case-sensitive ones accept, ignore the
// case of ASCII letters, and on ASCII text are exactly a case-folded
// prefix and suffix test.
func FuzzSubscriptionMatches(f *testing.F) {
	const subj = "/blobServices/default/containers/input/blobs/Videos/A.MP4"
	f.Add("/blobServices/default/containers/input/", ".mp4", subj, false)
	f.Add("/blobServices/default/containers/input/", ".mp4", subj, true)
	f.Add("/blobServices/default/containers/input/blobs/", "", subj, false)
	f.Add("", "", "", false)
	f.Add("/blobServices/default/containers/output/", "", subj, false)
	f.Add("/BLOBSERVICES/DEFAULT/CONTAINERS/INPUT/", ".Mp4", subj, false)
	f.Add("/blobServices/default/containers/input/blobs/", "/blobs/x.mp4", "/blobServices/default/containers/input/blobs/x.mp4", false)
	f.Add("", "\u212a", "/blobServices/default/containers/input/blobs/k", false) // Kelvin sign lowers to k
	f.Add("/x\xc3", "", "/x\xc3\xa9", false)                                     // a prefix cut inside a rune
	f.Fuzz(func(t *testing.T, begins, ends, subject string, caseSensitive bool) {
		s := Subscription{SubjectBeginsWith: begins, SubjectEndsWith: ends, SubjectCaseSensitive: caseSensitive}
		got := s.matches(subject)
		exact := strings.HasPrefix(subject, begins) && strings.HasSuffix(subject, ends)
		if caseSensitive {
			if got != exact {
				t.Fatalf("case-sensitive %q…%q on %q: got %v, want %v", begins, ends, subject, got, exact)
			}
			return
		}
		// Filters and subjects are text: invalid UTF-8 is only checked
		// for panics (strings.ToLower turns each bad byte into U+FFFD).
		if !utf8.ValidString(begins) || !utf8.ValidString(ends) || !utf8.ValidString(subject) {
			return
		}
		if exact && !got {
			t.Fatalf("case-insensitive %q…%q rejects %q, which matches case-sensitively", begins, ends, subject)
		}
		for _, v := range []string{asciiUpper(subject), asciiLower(subject), asciiSwap(subject)} {
			if g := s.matches(v); g != got {
				t.Fatalf("case-insensitive %q…%q: %q gives %v but %q gives %v", begins, ends, subject, got, v, g)
			}
		}
		if isASCII(begins) && isASCII(ends) && isASCII(subject) {
			want := len(subject) >= len(begins) && strings.EqualFold(subject[:len(begins)], begins) &&
				len(subject) >= len(ends) && strings.EqualFold(subject[len(subject)-len(ends):], ends)
			if got != want {
				t.Fatalf("case-insensitive %q…%q on %q: got %v, want %v", begins, ends, subject, got, want)
			}
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func mapASCII(s string, f func(byte) byte) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = f(c)
	}
	return string(b)
}

func asciiUpper(s string) string {
	return mapASCII(s, func(c byte) byte {
		if c >= 'a' && c <= 'z' {
			return c - 'a' + 'A'
		}
		return c
	})
}

func asciiLower(s string) string {
	return mapASCII(s, func(c byte) byte {
		if c >= 'A' && c <= 'Z' {
			return c - 'A' + 'a'
		}
		return c
	})
}

func asciiSwap(s string) string {
	return mapASCII(s, func(c byte) byte {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			return c ^ 0x20
		}
		return c
	})
}

// FuzzLoadState feeds arbitrary bytes as the cursor file (DataDir/state.json,
// which outlives the process and may be damaged or hand-edited). load
// either fails or returns a cursor Start can resume from: maps present,
// every outbox entry an event filed under its own delivery id (Start
// dereferences each entry, and a delivered event is removed by its id),
// and the cursor survives a save and a reload unchanged.
func FuzzLoadState(f *testing.F) {
	f.Add([]byte(`{"seen":{"input/a.mp4":"0x8DCAFE"},"sequencer":3,"outbox":{"d1":{"id":"d1","subscription":"s","event":{"subject":"/blobServices/default/containers/input/blobs/a.mp4"},"attempts":2,"published":"2026-03-01T09:12:33.1234567Z"}}}`))
	f.Add([]byte(`{"seen":null,"outbox":null}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"sequencer":-1}`))
	f.Add([]byte(`{"outbox":{"d1":{"event":[1,2]}}}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, raw []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "state.json")
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		s := New(Options{DataDir: dir})
		first, err := s.load()
		if err != nil {
			return
		}
		if first {
			t.Fatalf("load of an existing cursor reports a first start")
		}
		if s.st.Seen == nil || s.st.Outbox == nil {
			t.Fatalf("load(%q): nil maps: %+v", raw, s.st)
		}
		for id, p := range s.st.Outbox {
			if p == nil || len(p.Event) == 0 {
				t.Fatalf("load(%q): outbox entry %q holds no event (Start would dereference it)", raw, id)
			}
			if p.ID != id {
				t.Fatalf("load(%q): outbox entry %q has id %q (delivery would never remove it)", raw, id, p.ID)
			}
		}
		s.flush()
		loaded := s.st
		s2 := New(Options{DataDir: dir})
		if _, err := s2.load(); err != nil {
			t.Fatalf("reload of a saved cursor: %v", err)
		}
		if !reflect.DeepEqual(normalizeState(loaded), normalizeState(s2.st)) {
			t.Fatalf("cursor changed on save and reload:\n%+v\n%+v", loaded, s2.st)
		}
	})
}

// normalizeState compares times by instant and raw events by JSON value.
func normalizeState(st state) map[string]any {
	out := map[string]any{"seen": st.Seen, "sequencer": st.Sequencer}
	ob := map[string]any{}
	for id, p := range st.Outbox {
		var ev any
		_ = json.Unmarshal(p.Event, &ev)
		ob[id] = []any{p.ID, p.Subscription, ev, p.Attempts, p.Published.UnixNano()}
	}
	out["outbox"] = ob
	return out
}

// fakeWebhook answers every request with a canned response; "{code}" in
// the body is replaced by the validation code of the request.
type fakeWebhook struct {
	status int
	origin string
	body   []byte
	code   string // the code the stand-in sent
}

func (h *fakeWebhook) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		var evs []struct {
			Data struct {
				ValidationCode string `json:"validationCode"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &evs); err == nil && len(evs) == 1 {
			h.code = evs[0].Data.ValidationCode
		}
	}
	hdr := http.Header{}
	if h.origin != "" {
		hdr.Set("WebHook-Allowed-Origin", h.origin)
	}
	body := bytes.ReplaceAll(h.body, []byte("{code}"), []byte(h.code))
	return &http.Response{StatusCode: h.status, Header: hdr, Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
}

// FuzzHandshake feeds arbitrary webhook answers to the validation
// handshake. An Event Grid schema subscription is validated only by a 200
// whose body echoes the random validation code (so an endpoint that does
// not read the event cannot pass), and always by the canonical answer; a
// CloudEvents one only by a 200 allowing eventgrid.azure.net or "*".
func FuzzHandshake(f *testing.F) {
	f.Add(false, 200, "", []byte(`{"validationResponse":"{code}"}`))
	f.Add(false, 200, "", []byte(`{"validationResponse":"{code}","extra":1}`))
	f.Add(false, 200, "", []byte(`{"validationResponse":"wrong"}`))
	f.Add(false, 202, "", []byte(`{"validationResponse":"{code}"}`))
	f.Add(false, 200, "", []byte(`{"ValidationResponse":"{code}"}`))
	f.Add(false, 200, "", []byte(`"{code}"`))
	f.Add(false, 200, "", []byte(``))
	f.Add(true, 200, "eventgrid.azure.net", []byte(nil))
	f.Add(true, 200, "*", []byte(nil))
	f.Add(true, 200, "EventGrid.Azure.Net", []byte(nil))
	f.Add(true, 200, "evil.example", []byte(nil))
	f.Add(true, 204, "*", []byte(nil))
	f.Fuzz(func(t *testing.T, cloud bool, status int, origin string, body []byte) {
		if status < 100 || status > 999 {
			return
		}
		sub := Subscription{Name: "s", Endpoint: "http://127.0.0.1:1/hook", Schema: SchemaEventGrid}
		if cloud {
			sub.Schema = SchemaCloudEvents
		}
		h := &fakeWebhook{status: status, origin: origin, body: body}
		s := New(Options{HTTPClient: &http.Client{Transport: h}, Subscriptions: []Subscription{sub}, DeliveryTimeout: 5 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := s.handshake(ctx, sub)
		if cloud {
			allowed := origin == "*" || strings.EqualFold(origin, "eventgrid.azure.net")
			if want := status == 200 && allowed; (err == nil) != want {
				t.Fatalf("cloudevents handshake, status %d, origin %q: got err %v, want success %v", status, origin, err, want)
			}
			return
		}
		if h.code == "" {
			t.Fatalf("validation request carries no validation code")
		}
		answer := bytes.ReplaceAll(body, []byte("{code}"), []byte(h.code))
		if err == nil && (status != 200 || !bytes.Contains(answer, []byte(h.code))) {
			t.Fatalf("validated by status %d and %q, which do not echo code %q", status, answer, h.code)
		}
		var v map[string]json.RawMessage
		canonical := status == 200 && json.Unmarshal(answer, &v) == nil && len(v) == 1 &&
			string(v["validationResponse"]) == `"`+h.code+`"`
		if canonical && err != nil {
			t.Fatalf("canonical answer %q rejected: %v", answer, err)
		}
	})
}
