package batch

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/ffpipe/ffpipe/internal/presets"
	"github.com/ffpipe/ffpipe/internal/request"
)

var update = flag.Bool("update", false, "rewrite golden files")

const account = "devstoreaccount1"

// spec builds a complete TaskSpec for container/blob with profile name.
func spec(t testing.TB, container, blob, profileName string) TaskSpec {
	t.Helper()
	s, err := buildSpec(container, blob, profileName)
	if err != nil {
		t.Fatalf("spec(%q, %q): %v", blob, profileName, err)
	}
	return s
}

func buildSpec(container, blob, profileName string) (TaskSpec, error) {
	ps := presets.DefaultProfiles()
	d := request.Defaults{Account: account, Preset: "mp3", OutputContainer: "output", Profile: ps.Lookup}
	r := request.Request{Source: request.Source{Container: container, Blob: blob, ETag: "0x8DC1234567890AB", Size: 1234}, Profile: profileName, CorrelationID: "corr-1"}
	r, err := r.WithDefaults(d)
	if err != nil {
		return TaskSpec{}, err
	}
	outs, err := r.Outputs(d)
	if err != nil {
		return TaskSpec{}, err
	}
	p, _ := ps.Get(r.Profile)
	urls := make([]string, len(outs))
	for i := range urls {
		urls[i] = fmt.Sprintf("https://acct.blob.core.windows.net/output?sv=2024&sig=WRITESIG%d", i)
	}
	return TaskSpec{
		Key:         r.Key(account),
		Request:     r,
		Profile:     p,
		Outputs:     outs,
		InputURL:    "https://acct.blob.core.windows.net/" + container + "/blob?sv=2024&sig=READSIG",
		OutputURLs:  urls,
		StdoutURL:   "https://acct.blob.core.windows.net/logs?sv=2024&sig=OUTLOGSIG",
		StderrURL:   "https://acct.blob.core.windows.net/logs?sv=2024&sig=ERRLOGSIG",
		ResultURL:   "https://acct.blob.core.windows.net/logs?sv=2024&sig=RESLOGSIG",
		Constraints: Constraints{MaxWallClock: 30 * time.Minute, MaxRetries: 2},
	}, nil
}

func marshalIndent(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\ngot\n%s\nwant\n%s", name, got, want)
	}
}

func TestTaskContentGolden(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*TaskSpec)
		blob   string
		preset string
	}{
		{name: "mp3-sas", blob: "videos/a.mp4", preset: "", mutate: func(s *TaskSpec) {
			s.Enqueued = time.Date(2026, 3, 1, 11, 12, 33, 123456700, time.FixedZone("CET", 2*3600))
		}},
		{name: "thumbnail-sas", blob: "a.mp4", preset: "thumbnail"},
		{name: "web-sas", blob: "v/a.mp4", preset: "web"},
		{name: "hls-sas", blob: "v/a.mp4", preset: "hls", mutate: func(s *TaskSpec) { s.Constraints.RequiredSlots = 4 }},
		{name: "aac-identity", blob: "dir/ü b.mp4", preset: "aac", mutate: func(s *TaskSpec) {
			s.NodeIdentity = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ffpipe-pool"
			s.InputURL = "https://acct.blob.core.windows.net/input/dir/%C3%BC%20b.mp4"
			s.OutputURLs = []string{"https://acct.blob.core.windows.net/output"}
			s.StdoutURL = "https://acct.blob.core.windows.net/logs"
			s.StderrURL = "https://acct.blob.core.windows.net/logs"
			s.ResultURL = "https://acct.blob.core.windows.net/logs"
			s.Constraints = Constraints{} // defaults
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec(t, "input", tt.blob, tt.preset)
			if tt.mutate != nil {
				tt.mutate(&s)
			}
			c, err := s.Content()
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, "task/"+tt.name+".json", marshalIndent(t, c))
		})
	}
}

func TestTaskContentRequestEnvRoundTrip(t *testing.T) {
	s := spec(t, "input", "vidéos/日本語 🎬.mp4", "opus")
	c, err := s.Content()
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, e := range c.EnvironmentSettings {
		env[*e.Name] = *e.Value
	}
	if env[EnvKey] != s.Key {
		t.Errorf("%s = %q, want %q", EnvKey, env[EnvKey], s.Key)
	}
	if strings.ContainsAny(env[EnvRequest], "=+/") {
		t.Errorf("%s = %q, want base64url without padding", EnvRequest, env[EnvRequest])
	}
	got, err := DecodeRequestEnv(env[EnvRequest])
	if err != nil {
		t.Fatal(err)
	}
	if got != s.Request {
		t.Errorf("decoded request = %+v, want %+v", got, s.Request)
	}
	if k := got.Key(account); k != s.Key {
		t.Errorf("key from decoded request = %s, want %s", k, s.Key)
	}
}

// TestTaskContentEnqueuedEnv: the enqueued time travels as EnvEnqueued,
// RFC 3339 in UTC, only when known, and changes nothing else about how the
// task runs.
func TestTaskContentEnqueuedEnv(t *testing.T) {
	base := spec(t, "input", "a.mp4", "")
	plain := mustContent(t, base)
	tests := []struct {
		name     string
		enqueued time.Time
		want     string // "" = no setting
	}{
		{"nanoseconds, other zone", time.Date(2026, 3, 1, 11, 12, 33, 123456789, time.FixedZone("x", 2*3600)), "2026-03-01T09:12:33.123456789Z"},
		{"whole seconds", time.Date(2026, 3, 1, 9, 12, 33, 0, time.UTC), "2026-03-01T09:12:33Z"},
		{"unknown", time.Time{}, ""},
		{"beyond RFC 3339", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			s.Enqueued = tt.enqueued
			c := mustContent(t, s)
			env := map[string]string{}
			for _, e := range c.EnvironmentSettings {
				env[*e.Name] = *e.Value
			}
			got, ok := env[EnvEnqueued]
			if tt.want == "" && ok {
				t.Errorf("%s = %q, want no setting", EnvEnqueued, got)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("%s = %q (present %v), want %q", EnvEnqueued, got, ok, tt.want)
			}
			if tt.want != "" && !ParseEnqueuedEnv(got).Equal(tt.enqueued) {
				t.Errorf("ParseEnqueuedEnv(%q) = %v, want %v", got, ParseEnqueuedEnv(got), tt.enqueued)
			}
			wantN := len(plain.EnvironmentSettings)
			if tt.want != "" {
				wantN++
			}
			if env[EnvKey] != s.Key || env[EnvRequest] == "" || len(env) != wantN {
				t.Errorf("environment = %v, want the key, the request and at most %s", env, EnvEnqueued)
			}
			if *c.CommandLine != *plain.CommandLine || invariant(t, c) != invariant(t, plain) {
				t.Errorf("the enqueued time changed how the task runs:\ngot  %s\nwant %s", invariant(t, c), invariant(t, plain))
			}
		})
	}
}

func TestParseEnqueuedEnv(t *testing.T) {
	want := time.Date(2026, 3, 1, 9, 12, 33, 123456700, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-03-01T09:12:33.1234567Z":       want,
		" 2026-03-01T11:12:33.1234567+02:00": want,
		"2026-03-01T09:12:33Z":               want.Truncate(time.Second),
		"2026-03-01T09:12:33":                {}, // not what Content writes
		"":                                   {},
		"yesterday":                          {},
	} {
		if got := ParseEnqueuedEnv(in); !got.Equal(want) || (!got.IsZero() && got.Location() != time.UTC) {
			t.Errorf("ParseEnqueuedEnv(%q) = %v, want %v in UTC", in, got, want)
		}
	}
}

func TestTaskSpecValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*TaskSpec)
	}{
		{"bad key", func(s *TaskSpec) { s.Key = "Videos-A" }},
		{"no output", func(s *TaskSpec) { s.Request.Output = request.Output{} }},
		{"no etag", func(s *TaskSpec) { s.Request.Source.ETag = "" }},
		{"profile mismatch", func(s *TaskSpec) { s.Profile, _ = presets.DefaultProfiles().Get("wav") }},
		{"invalid profile", func(s *TaskSpec) { s.Profile.Outputs[0].Args = []string{"-i", "/etc/passwd"} }},
		{"outputs missing", func(s *TaskSpec) { s.Outputs = nil }},
		{"output URLs missing", func(s *TaskSpec) { s.OutputURLs = nil }},
		{"output differs from the request", func(s *TaskSpec) { s.Outputs[0].Blob = "b.mp3" }},
		{"file output with a folder", func(s *TaskSpec) { s.Outputs[0].Folder = "a" }},
		{"too many slots", func(s *TaskSpec) { s.Constraints.RequiredSlots = 65 }},
		{"relative input URL", func(s *TaskSpec) { s.InputURL = "input/a.mp4" }},
		{"file URL", func(s *TaskSpec) { s.OutputURLs[0] = "file:///tmp" }},
		{"no result URL", func(s *TaskSpec) { s.ResultURL = "" }},
		{"no stdout URL", func(s *TaskSpec) { s.StdoutURL = "" }},
		{"no stderr URL", func(s *TaskSpec) { s.StderrURL = "" }},
		{"negative wall clock", func(s *TaskSpec) { s.Constraints.MaxWallClock = -time.Second }},
		{"unlimited retries", func(s *TaskSpec) { s.Constraints.MaxRetries = -1 }},
		{"too many retries", func(s *TaskSpec) { s.Constraints.MaxRetries = 11 }},
		{"invalid blob", func(s *TaskSpec) { s.Request.Source.Blob = "../x.mp4" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec(t, "input", "a.mp4", "")
			tt.mutate(&s)
			if _, err := s.Content(); !errors.Is(err, ErrInvalidSpec) {
				t.Errorf("Content error = %v, want ErrInvalidSpec", err)
			}
		})
	}
}

func TestISODuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "PT0S"},
		{-time.Second, "PT0S"},
		{time.Millisecond, "PT1S"},
		{45 * time.Second, "PT45S"},
		{30 * time.Minute, "PT30M"},
		{90 * time.Minute, "PT1H30M"},
		{time.Hour + 2*time.Second, "PT1H2S"},
		{24 * time.Hour, "P1D"},
		{7*24*time.Hour + time.Minute, "P7DT1M"},
	}
	for _, tt := range tests {
		if got := ISODuration(tt.d); got != tt.want {
			t.Errorf("ISODuration(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// invariant returns the parts of a task that must not depend on the
// container or blob names: the command line, local file paths and
// patterns, the user identity.
func invariant(t testing.TB, c azbatch.CreateTaskContent) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(*c.CommandLine)
	for _, rf := range c.ResourceFiles {
		b.WriteString("|rf:" + *rf.FilePath)
		if rf.BlobPrefix != nil || rf.StorageContainerURL != nil || rf.FileMode != nil {
			t.Fatalf("unexpected resource file fields: %+v", rf)
		}
	}
	for _, of := range c.OutputFiles {
		b.WriteString("|of:" + *of.FilePattern + ":" + string(*of.UploadOptions.UploadCondition))
	}
	b.WriteString("|" + string(*c.UserIdentity.AutoUser.Scope) + string(*c.UserIdentity.AutoUser.ElevationLevel))
	return b.String()
}

// FuzzTaskSpec proves that no container or blob name byte reaches the
// command line or a node-local path: for any valid names, the command
// line, the resource file path and the output patterns are exactly those
// of a fixed reference request, and the names travel only in the output
// destination path and the base64url request.
func FuzzTaskSpec(f *testing.F) {
	for _, seed := range []struct{ container, blob string }{
		{"input", "a.mp4"},
		{"input", "a;rm -rf ~.mp4"},
		{"input", "$(id).mp4"},
		{"input", "`id`.mp4"},
		{"input", "a b.mp4"},
		{"input", `'"|&<>.mp4`},
		{"input", "*.mp4"},
		{"input", "-y.mp4"},
		{"input", "-i x.mp4"},
		{"input", "--help.mp4"},
		{"input", "%2e%2e/x.mp4"},
		{"input", "dir/sub/x.mp4"},
		{"input", "e\u0301\u202e🎬.mp4"},
		{"input-2", strings.Repeat("a", 250) + "/" + strings.Repeat("b", 300) + ".mp4"},
		{"in", "../../x.mp4"},
	} {
		f.Add(seed.container, seed.blob, "mp3")
	}
	f.Add("input", "a.mp4", "thumbnail")
	for _, p := range []string{"web", "hls", "podcast"} {
		f.Add("input", "$(touch x)/a b.mp4", p)
	}
	ref := map[string]string{}
	for _, p := range presets.DefaultProfiles().Names() {
		ref[p] = invariant(f, mustContent(f, spec(f, "input", "reference.mp4", p)))
	}
	f.Fuzz(func(t *testing.T, container, blob, presetName string) {
		if _, ok := ref[presetName]; !ok {
			return
		}
		if request.ValidateContainer(container) != nil || request.ValidateBlob(blob) != nil {
			return
		}
		s, err := buildSpec(container, blob, presetName)
		if err != nil {
			return // e.g. the output name would be too long: a failure record, no task
		}
		s.Enqueued = fuzzEnqueued
		c, err := s.Content()
		if err != nil {
			t.Fatalf("Content(%q, %q): %v", container, blob, err)
		}
		if got := invariant(t, c); got != ref[presetName] {
			t.Fatalf("task invariant depends on the names:\ngot  %s\nwant %s", got, ref[presetName])
		}
		if *c.ID != s.Key || !request.IsKey(*c.ID) {
			t.Fatalf("task id %q is not the key %q", *c.ID, s.Key)
		}
		stdout, stderr := LogBlobs(s.Key)
		paths := map[string]string{StdoutPattern: stdout, StderrPattern: stderr, presets.ResultFile: ResultBlob(s.Key)}
		for i, o := range s.Outputs {
			if o.Folder == "" {
				paths[s.Profile.OutputFile(i)] = o.Blob
			} else {
				for _, p := range []string{presets.HLSMasterPattern, presets.HLSPlaylistsPattern, presets.HLSSegmentsPattern} {
					paths[p] = o.Folder
				}
			}
		}
		if len(c.OutputFiles) != len(paths) {
			t.Fatalf("%d output files, want %d", len(c.OutputFiles), len(paths))
		}
		for _, of := range c.OutputFiles {
			if got, want := *of.Destination.Container.Path, paths[*of.FilePattern]; got != want {
				t.Fatalf("%s goes to %q, want %q", *of.FilePattern, got, want)
			}
		}
		for _, e := range c.EnvironmentSettings {
			if *e.Name == EnvEnqueued {
				// A time formatted from the spec, whatever the names.
				if *e.Value != FormatEnqueuedEnv(fuzzEnqueued) {
					t.Fatalf("%s = %q, want %q", EnvEnqueued, *e.Value, FormatEnqueuedEnv(fuzzEnqueued))
				}
				continue
			}
			isB64 := strings.Trim(blob, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == ""
			if !isB64 && strings.Contains(*e.Value, blob) {
				t.Fatalf("environment %s carries the raw blob name", *e.Name)
			}
		}
		b, err := json.Marshal(azbatch.TaskGroup{Value: []azbatch.CreateTaskContent{c}})
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		enc, err := encodeTask(c)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		if got := collectionBody([]encodedTask{enc}); !bytes.Equal(got, b) {
			t.Fatalf("collection body differs from the SDK's:\ngot  %s\nwant %s", got, b)
		}
	})
}

// fuzzEnqueued is the enqueued time of FuzzTaskSpec's tasks (the
// reference tasks have none: it must not change the invariant).
var fuzzEnqueued = time.Date(2026, 3, 1, 9, 12, 33, 123456789, time.UTC)

func mustContent(t testing.TB, s TaskSpec) azbatch.CreateTaskContent {
	t.Helper()
	c, err := s.Content()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func BenchmarkTaskContent(b *testing.B) {
	s := spec(b, "input", "videos/2024/some clip.mp4", "")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Content(); err != nil {
			b.Fatal(err)
		}
	}
}
