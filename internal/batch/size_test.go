package batch

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// FuzzEscapedLen: escapedLen is exactly the length encoding/json gives a
// string.
func FuzzEscapedLen(f *testing.F) {
	for _, s := range []string{"", "a", `"\`, "\x00\x1f\n\t", "<&>", "é🎬", "\u2028\u2029", "\xff\xfe", "https://a/b?sv=1&sig=x%2B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := escapedLen(s); got != len(b) {
			t.Fatalf("escapedLen(%q) = %d, want %d (%s)", s, got, len(b), b)
		}
	})
}

func TestSizeBound(t *testing.T) {
	long := strings.Repeat("<&>\"", 500)
	when := time.Date(2026, 3, 1, 10, 0, 0, 123, time.FixedZone("x", 3600))
	enqueued := spec(t, "input", "a.mp4", "mp3")
	enqueued.Enqueued = when
	for name, v := range map[string]any{
		"task":                    mustContent(t, spec(t, "input", "a.mp4", "mp3")),
		"task with enqueued time": mustContent(t, enqueued),
		"escaping-heavy task": azbatch.CreateTaskContent{ID: to.Ptr(long), CommandLine: to.Ptr(long),
			EnvironmentSettings: []azbatch.EnvironmentSetting{{Name: to.Ptr("A"), Value: to.Ptr(long)}, {Name: to.Ptr("B")}}},
		"group":             azbatch.TaskGroup{Value: []azbatch.CreateTaskContent{mustContent(t, spec(t, "input", "a.mp4", "mp3")), mustContent(t, spec(t, "input", "b.mp4", "thumbnail"))}},
		"times and numbers": azbatch.TaskConstraints{MaxTaskRetryCount: to.Ptr[int32](-2147483648)},
		"job":               azbatch.Job{CreationTime: &when, Priority: to.Ptr[int32](-1000)},
		"map":               map[string]any{"a": []int{1, 2}, "b": nil},
		"empty":             azbatch.CreateTaskContent{},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := sizeBound(v); got < len(b) {
			t.Errorf("%s: bound %d < encoded %d", name, got, len(b))
		} else if strings.HasPrefix(name, "task") && got > 3*len(b) {
			t.Errorf("%s: bound %d is not close to the encoded %d", name, got, len(b))
		}
	}
}

// TestSizeBoundCountsEnqueued: the EnvEnqueued setting adds at least its
// encoded size to a task's bound, so collections split by the bound stay
// under the request limit.
func TestSizeBoundCountsEnqueued(t *testing.T) {
	s := spec(t, "input", "a.mp4", "mp3")
	without := mustContent(t, s)
	s.Enqueued = time.Date(2026, 3, 1, 9, 12, 33, 123456789, time.UTC)
	with := mustContent(t, s)
	if len(with.EnvironmentSettings) != len(without.EnvironmentSettings)+1 {
		t.Fatalf("environment settings: got %d, want %d", len(with.EnvironmentSettings), len(without.EnvironmentSettings)+1)
	}
	setting, err := json.Marshal(with.EnvironmentSettings[len(with.EnvironmentSettings)-1])
	if err != nil {
		t.Fatal(err)
	}
	if grew := sizeBound(with) - sizeBound(without); grew < len(setting)+len(",") {
		t.Errorf("bound grew by %d with %s, want at least %d (%s)", grew, EnvEnqueued, len(setting)+1, setting)
	}
	b, err := json.Marshal(with)
	if err != nil {
		t.Fatal(err)
	}
	if bound := sizeBound(with); bound < len(b) {
		t.Errorf("bound %d < encoded %d", bound, len(b))
	}
}
