package presets

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestBuiltinsValid(t *testing.T) {
	s := Default()
	want := []string{"aac", "hls", "mp3", "mp4-720", "opus", "thumbnail", "wav"}
	if got := s.Names(); !slices.Equal(got, want) {
		t.Errorf("Names = %v, want %v", got, want)
	}
	if _, ok := s.Get(DefaultName); !ok {
		t.Errorf("default preset %q missing", DefaultName)
	}
	for _, n := range s.Names() {
		p, _ := s.Get(n)
		if err := p.Validate(); err != nil {
			t.Errorf("builtin %s: %v", n, err)
		}
		if p.ContentType == "" || p.Kind == "" {
			t.Errorf("builtin %s: content type %q kind %q, want both filled", n, p.ContentType, p.Kind)
		}
	}
}

func TestArgvGolden(t *testing.T) {
	s := Default()
	for _, n := range s.Names() {
		t.Run(n, func(t *testing.T) {
			p, _ := s.Get(n)
			got := p.CommandLine() + "\n"
			golden := filepath.Join("testdata", "argv", n+".golden")
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
				t.Errorf("CommandLine:\ngot  %s\nwant %s", got, want)
			}
		})
	}
}

// The hardening flags are present and in the right place (input options
// before -i, the output last).
func TestArgvHardening(t *testing.T) {
	for _, p := range Builtins() {
		t.Run(p.Name, func(t *testing.T) {
			argv := p.Argv()
			hls := p.normalize().Kind == KindHLS
			if argv[0] != Program {
				t.Errorf("argv[0] = %q, want %q", argv[0], Program)
			}
			in := slices.Index(argv, "-i")
			if in < 0 || argv[in+1] != InputFile {
				t.Fatalf("argv has no -i %s: %v", InputFile, argv)
			}
			if n := strings.Count(" "+strings.Join(argv, " ")+" ", " -i "); n != 1 {
				t.Errorf("argv has %d -i options, want 1", n)
			}
			before := func(opt, val string) {
				t.Helper()
				i := slices.Index(argv, opt)
				if i < 0 || i > in || argv[i+1] != val {
					t.Errorf("want input option %s %s before -i in %v", opt, val, argv)
				}
			}
			before("-protocol_whitelist", "file")
			before("-f", "mov,mp4,m4a,3gp,3g2,mj2")
			before("-enable_drefs", "0")
			before("-use_absolute_path", "0")
			for _, flag := range []string{"-nostdin", "-xerror", "-y"} {
				if !slices.Contains(argv, flag) {
					t.Errorf("argv lacks %s", flag)
				}
			}
			wantLast, wantMap := p.OutputFile(), "0:a:0"
			switch p.normalize().Kind {
			case KindImage, KindVideo:
				wantMap = "0:v:0"
			case KindHLS:
				wantLast, wantMap = HLSDir+"/%v/"+HLSPlaylist, "[v0]"
			}
			if got := argv[len(argv)-1]; got != wantLast {
				t.Errorf("last arg = %q, want %q", got, wantLast)
			}
			if i := slices.Index(argv, "-map"); i < in || argv[i+1] != wantMap {
				t.Errorf("want -map %s after -i in %v", wantMap, argv)
			}
			for _, a := range argv {
				if err := scriptSafe(a); err != nil {
					t.Errorf("argv not safe: %v", err)
				}
			}
			if !hls {
				if err := checkArgvSafe(p.Args); err != nil {
					t.Errorf("args not safe: %v", err)
				}
			}
		})
	}
}

func TestCustomPresets(t *testing.T) {
	tests := []struct {
		name string
		json string
		ok   bool
	}{
		{"add", `{"mp3-low":{"ext":"mp3","args":["-c:a","libmp3lame","-b:a","96k","-ac","1"]}}`, true},
		{"override builtin", `{"mp3":{"ext":"mp3","args":["-c:a","libmp3lame","-q:a","4"]}}`, true},
		{"flac with filter", `{"flac":{"ext":"flac","args":["-af","aresample=44100,volume=0.5"]}}`, true},
		{"png thumb", `{"poster":{"ext":"png","contentType":"image/png","args":["-ss","5","-vf","scale=640:-2","-c:v","png"]}}`, true},
		{"name field matches", `{"x":{"name":"x","ext":"wav","args":[]}}`, true},
		{"empty args", `{"x":{"ext":"wav"}}`, true},
		{"bad name", `{"MP3":{"ext":"mp3","args":[]}}`, false},
		{"long name", `{"` + strings.Repeat("a", 33) + `":{"ext":"mp3","args":[]}}`, false},
		{"name mismatch", `{"x":{"name":"y","ext":"mp3","args":[]}}`, false},
		{"unknown field", `{"x":{"ext":"mp3","args":[],"shell":"sh"}}`, false},
		{"ext not allowed", `{"x":{"ext":"mkv","args":[]}}`, false},
		{"video", `{"x":{"ext":"mp4","maxHeight":480,"args":["-c:v","libx265","-crf","28","-preset","fast","-c:a","aac","-b:a","96k"]}}`, true},
		{"video scale", `{"x":{"ext":"webm","args":["-c:v","libvpx-vp9","-b:v","1000k","-vf","scale=-2:480","-c:a","libopus"]}}`, true},
		{"video odd scale", `{"x":{"ext":"mp4","args":["-vf","scale=-2:481"]}}`, false},
		{"video other filter", `{"x":{"ext":"mp4","args":["-vf","thumbnail"]}}`, false},
		{"video scale and maxHeight", `{"x":{"ext":"mp4","maxHeight":480,"args":["-vf","scale=-2:480"]}}`, false},
		{"video odd maxHeight", `{"x":{"ext":"mp4","maxHeight":481,"args":[]}}`, false},
		{"video wrong codec", `{"x":{"ext":"mp4","args":["-c:v","libvpx-vp9"]}}`, false},
		{"video wrong audio codec", `{"x":{"ext":"mp4","args":["-c:a","libopus"]}}`, false},
		{"video pix_fmt", `{"x":{"ext":"mp4","args":["-pix_fmt","rgb24"]}}`, false},
		{"maxHeight on audio", `{"x":{"ext":"mp3","maxHeight":480,"args":[]}}`, false},
		{"hls", `{"x":{"ext":"m3u8","ladder":[240,720],"args":["-preset","fast","-profile:v","main"]}}`, true},
		{"hls bad rung", `{"x":{"ext":"m3u8","ladder":[700],"args":[]}}`, false},
		{"hls rung twice", `{"x":{"ext":"m3u8","ladder":[360,360],"args":[]}}`, false},
		{"hls rate option", `{"x":{"ext":"m3u8","args":["-b:v","1000k"]}}`, false},
		{"hls segment option", `{"x":{"ext":"m3u8","args":["-hls_time","1"]}}`, false},
		{"ext with path", `{"x":{"ext":"../mp3","args":[]}}`, false},
		{"kind mismatch", `{"x":{"ext":"mp3","kind":"image","args":[]}}`, false},
		{"bad content type", `{"x":{"ext":"mp3","contentType":"text/html","args":[]}}`, false},
		{"second input", `{"x":{"ext":"mp3","args":["-i","/etc/passwd"]}}`, false},
		{"lavfi", `{"x":{"ext":"mp3","args":["-f","lavfi"]}}`, false},
		{"filter_complex", `{"x":{"ext":"mp3","args":["-filter_complex","amovie=/etc/passwd"]}}`, false},
		{"amovie in af", `{"x":{"ext":"mp3","args":["-af","amovie=/etc/passwd"]}}`, false},
		{"movie in vf", `{"x":{"ext":"jpg","args":["-vf","movie=x.mp4"]}}`, false},
		{"subtitles in vf", `{"x":{"ext":"jpg","args":["-vf","subtitles=x.srt"]}}`, false},
		{"smuggled filter", `{"x":{"ext":"jpg","args":["-vf","scale=1:1[a];movie=x"]}}`, false},
		{"filter path param", `{"x":{"ext":"jpg","args":["-vf","scale=w=/etc/passwd"]}}`, false},
		{"protocol option", `{"x":{"ext":"mp3","args":["-protocol_whitelist","file,http"]}}`, false},
		{"overwrite output", `{"x":{"ext":"mp3","args":["-y","x"]}}`, false},
		{"odd args", `{"x":{"ext":"mp3","args":["-c:a"]}}`, false},
		{"value with space", `{"x":{"ext":"mp3","args":["-b:a","96k -i x"]}}`, false},
		{"negative-looking value", `{"x":{"ext":"mp3","args":["-b:a","-1"]}}`, false},
		{"encoder for other ext", `{"x":{"ext":"mp3","args":["-c:a","aac"]}}`, false},
		{"copy codec", `{"x":{"ext":"m4a","args":["-c:a","copy"]}}`, false},
		{"alias twice", `{"x":{"ext":"mp3","args":["-c:a","libmp3lame","-acodec","libmp3lame"]}}`, false},
		{"video option on audio", `{"x":{"ext":"mp3","args":["-vf","scale=1:1"]}}`, false},
		{"audio option on image", `{"x":{"ext":"jpg","args":["-b:a","96k"]}}`, false},
		{"map", `{"x":{"ext":"mp3","args":["-map","0:a:1"]}}`, false},
		{"not an object", `[{"name":"x","ext":"mp3"}]`, false},
		{"args wrong type", `{"x":{"ext":"mp3","args":"-c:a libmp3lame"}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Load(tt.json)
			if (err == nil) != tt.ok {
				t.Fatalf("Load = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				return
			}
			for _, n := range s.Names() {
				p, _ := s.Get(n)
				for _, a := range p.Argv() {
					if err := scriptSafe(a); err != nil {
						t.Errorf("preset %s argv not safe: %v", n, err)
					}
				}
			}
		})
	}
}

func TestLoadOverrideAndEmpty(t *testing.T) {
	s, err := Load("")
	if err != nil || len(s.Names()) != len(Builtins()) {
		t.Fatalf("Load(\"\") = %v, %v; want the builtins", s, err)
	}
	s, err = Load(`{"mp3":{"ext":"mp3","args":["-c:a","libmp3lame","-q:a","5"]},"extra":{"ext":"ogg","args":["-c:a","libvorbis"]}}`)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.Get("mp3")
	if !slices.Equal(p.Args, []string{"-c:a", "libmp3lame", "-q:a", "5"}) {
		t.Errorf("overridden mp3 args = %v", p.Args)
	}
	if ext, ok := s.Ext("extra"); !ok || ext != "ogg" {
		t.Errorf("Ext(extra) = %q, %v; want ogg, true", ext, ok)
	}
	if _, ok := s.Ext("nope"); ok {
		t.Errorf("Ext(nope) ok = true, want false")
	}
	// Get returns a copy: mutating it does not change the set.
	p.Args[0] = "-i"
	if q, _ := s.Get("mp3"); q.Args[0] != "-c:a" {
		t.Errorf("Set mutated through Get: %v", q.Args)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add(`{"mp3-low":{"ext":"mp3","args":["-c:a","libmp3lame","-b:a","96k"]}}`)
	f.Add(`{"x":{"ext":"jpg","args":["-vf","thumbnail,scale=320:-2","-q:v","3"]}}`)
	f.Add(`{"x":{"ext":"flac","args":["-af","aresample=44100"]}}`)
	f.Fuzz(func(t *testing.T, js string) {
		s, err := Load(js)
		if err != nil {
			return
		}
		for _, n := range s.Names() {
			p, _ := s.Get(n)
			argv := p.Argv()
			for _, a := range argv {
				if err := scriptSafe(a); err != nil {
					t.Fatalf("accepted preset %s with unsafe argv: %v", n, err)
				}
			}
			if err := checkArgvSafe(p.Args); err != nil {
				t.Fatalf("accepted preset %s with unsafe args: %v", n, err)
			}
			if c := strings.Count(" "+strings.Join(argv, " ")+" ", " -i "); c != 1 {
				t.Fatalf("accepted preset %s with %d -i options", n, c)
			}
			for _, a := range p.Args {
				if strings.Contains(a, "movie") || strings.Contains(a, "lavfi") || strings.Contains(a, "/") {
					t.Fatalf("accepted preset %s with dangerous arg %q", n, a)
				}
			}
		}
	})
}
