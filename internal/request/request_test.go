package request

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ffpipe/ffpipe/internal/failure"
)

var update = flag.Bool("update", false, "rewrite golden files")

// describe renders a Decode outcome for golden files.
func describe(r Request, err error) string {
	if err != nil {
		var bre *BadRequestError
		if !errors.As(err, &bre) {
			return fmt.Sprintf("error (not a BadRequestError): %v\n", err)
		}
		return fmt.Sprintf("error code=%s field=%s\n%s\n", bre.Code(), bre.Field, bre.Reason)
	}
	b, err := r.Encode()
	if err != nil {
		return fmt.Sprintf("encode error: %v\n", err)
	}
	return string(b) + "\n"
}

func TestDecodeGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/messages/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := describe(Decode(in))
			golden := strings.TrimSuffix(f, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update): %v", err)
			}
			if got != string(want) {
				t.Errorf("Decode(%s):\ngot  %s\nwant %s", name, got, want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name     string
		body     []byte
		sentinel error
		code     failure.Reason
	}{
		{"too large", append([]byte(`{"source":{"container":"input","blob":"a.mp4"},"pad":"`), bytes.Repeat([]byte("x"), MaxBodyBytes)...), ErrTooLarge, failure.TooLarge},
		{"v2", []byte(`{"v":2,"source":{"container":"input","blob":"a.mp4"}}`), ErrUnsupportedVersion, failure.UnsupportedVersion},
		{"name too long", []byte(`{"source":{"container":"input","blob":"` + strings.Repeat("a", 1025) + `"}}`), ErrNameTooLong, failure.NameTooLong},
		{"bad container", []byte(`{"source":{"container":"IN","blob":"a"}}`), nil, failure.BadRequest},
		{"dot-dot segment", []byte(`{"source":{"container":"input","blob":"a/../b.mp4"}}`), ErrBadName, failure.BadName},
		{"control character", []byte(`{"source":{"container":"input","blob":"a\u0001b.mp4"}}`), ErrBadName, failure.BadName},
		{"invalid utf-8", []byte("{\"source\":{\"container\":\"input\",\"blob\":\"a\xff\"}}"), nil, failure.BadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.body)
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("Decode error = %v, want one matching ErrBadRequest", err)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("Decode error = %v, want one matching %v", err, tt.sentinel)
			}
			if got := Code(err); got != tt.code {
				t.Errorf("Code = %q, want %q", got, tt.code)
			}
		})
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	r := Request{
		V:             1,
		Source:        Source{Container: "input", Blob: "dir/ü a.mp4", ETag: "0x8DC", Size: 42},
		Preset:        "mp3",
		Output:        Output{Container: "output", Blob: "dir/ü a.mp3"},
		CorrelationID: "abc-123",
	}
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode(Encode(r)) error: %v", err)
	}
	if got != r {
		t.Errorf("round trip: got %+v, want %+v", got, r)
	}
	// Minimal requests encode without empty optional fields.
	b, _ = Request{Source: Source{Container: "input", Blob: "a.mp4"}}.Encode()
	if want := `{"v":1,"source":{"container":"input","blob":"a.mp4"}}`; string(b) != want {
		t.Errorf("Encode(minimal) = %s, want %s", b, want)
	}
}

func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/messages/*.json")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := Decode(body)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("Decode error %v is not a BadRequestError", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded request does not validate: %v", err)
		}
		b, err := r.Encode()
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		r2, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(Encode(r)): %v", err)
		}
		if r2 != r {
			t.Fatalf("round trip: got %+v, want %+v", r2, r)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	body, err := os.ReadFile("testdata/messages/full.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKey(b *testing.B) {
	for b.Loop() {
		_ = Key("devstoreaccount1", "input", "videos/a.mp4", `"0x8DC1234567890AB"`)
	}
}

func TestLogValueEscapes(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	r := Request{Source: Source{Container: "input", Blob: "a\u202e\"}\n{\"level\":\"ERROR\"" + strings.Repeat("x", 200)}, Preset: "mp3"}
	log.Info("msg", "req", r)
	line := buf.String()
	if strings.Count(line, "\n") != 1 || strings.Contains(line, "\u202e") || len(line) > 400 {
		t.Errorf("log line not escaped or not shortened: %s", line)
	}
	if !strings.Contains(line, `"container":"input"`) || !strings.Contains(line, `"preset":"mp3"`) || !strings.Contains(line, `"blob":"a\\u202e\\\"}\\n{`) {
		t.Errorf("log line lacks fields: %s", line)
	}
}

func TestLogExcerpt(t *testing.T) {
	tests := []struct{ in, want string }{
		{"videos/é 日本.mp4", "videos/é 日本.mp4"},
		{"a\nb", `a\nb`},
		{"a\u202eb", `a\u202eb`},
		{strings.Repeat("x", 50), strings.Repeat("x", 40) + "…"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := logExcerpt(tt.in); got != tt.want {
			t.Errorf("logExcerpt(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
