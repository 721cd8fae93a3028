package presets

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBuiltinProfiles(t *testing.T) {
	ps := DefaultProfiles()
	want := []string{"aac", "hls", "mp3", "mp4-720", "opus", "podcast", "thumbnail", "wav", "web"}
	if got := ps.Names(); !slices.Equal(got, want) {
		t.Fatalf("Names = %v, want %v", got, want)
	}
	tests := []struct {
		name    string
		outputs []string
		files   []string
		slots   int
	}{
		{"mp3", []string{"mp3"}, []string{"output.mp3"}, 1},
		{"podcast", []string{"mp3", "opus", "thumbnail"}, []string{"output.mp3", "output-1.opus", "output-2.jpg"}, 1},
		{"web", []string{"mp4-720", "thumbnail"}, []string{"output.mp4", "output-1.jpg"}, 2},
		{"hls", []string{"hls"}, []string{"hls/master.m3u8"}, 2},
	}
	for _, tt := range tests {
		p, ok := ps.Get(tt.name)
		if !ok {
			t.Fatalf("no profile %s", tt.name)
		}
		var names, files []string
		for i, o := range p.Outputs {
			names = append(names, o.Name)
			files = append(files, p.OutputFile(i))
		}
		if !slices.Equal(names, tt.outputs) || !slices.Equal(files, tt.files) || p.Slots != tt.slots {
			t.Errorf("%s: outputs %v files %v slots %d, want %v %v %d", tt.name, names, files, p.Slots, tt.outputs, tt.files, tt.slots)
		}
	}
	web, _ := ps.Get("web")
	if web.Outputs[0].MaxHeight != 720 || !strings.Contains(web.Script(), "+faststart") {
		t.Errorf("web: maxHeight %d, want 720 with +faststart", web.Outputs[0].MaxHeight)
	}
	hls, _ := ps.Get("hls")
	if !slices.Equal(hls.Outputs[0].Ladder, []int{360, 540, 720, 1080}) {
		t.Errorf("hls ladder %v", hls.Outputs[0].Ladder)
	}
}

func TestLoadProfiles(t *testing.T) {
	tests := []struct {
		name    string
		presets string
		json    string
		err     string
		check   func(t *testing.T, ps *Profiles)
	}{
		{name: "none", check: func(t *testing.T, ps *Profiles) {
			if _, ok := ps.Get("podcast"); !ok {
				t.Error("no podcast")
			}
		}},
		{name: "custom", json: `{"lecture":{"outputs":[{"preset":"mp3"},{"preset":"thumbnail","optional":true},{"name":"small","ext":"mp4","maxHeight":480,"args":["-c:v","libx264","-crf","26"]}],"slots":3}}`,
			check: func(t *testing.T, ps *Profiles) {
				p, _ := ps.Get("lecture")
				if len(p.Outputs) != 3 || p.Slots != 3 || p.Outputs[2].Kind != KindVideo || !p.Outputs[1].Optional {
					t.Errorf("lecture = %+v", p)
				}
			}},
		{name: "custom preset keeps its name over a built-in profile", presets: `{"web":{"ext":"mp3","args":[]}}`,
			check: func(t *testing.T, ps *Profiles) {
				p, _ := ps.Get("web")
				if len(p.Outputs) != 1 || p.Outputs[0].Ext != "mp3" {
					t.Errorf("web = %+v, want the custom one-output preset", p)
				}
			}},
		{name: "custom profile over everything", json: `{"mp3":{"outputs":[{"preset":"mp3"},{"preset":"opus"}]}}`,
			check: func(t *testing.T, ps *Profiles) {
				if p, _ := ps.Get("mp3"); len(p.Outputs) != 2 {
					t.Errorf("mp3 = %+v", p)
				}
			}},
		{name: "custom preset referenced", presets: `{"mp3-low":{"ext":"mp3","args":["-b:a","64k"]}}`, json: `{"x":{"outputs":[{"preset":"mp3-low"}]}}`},
		{name: "unknown preset", json: `{"x":{"outputs":[{"preset":"nope"}]}}`, err: "not configured"},
		{name: "both forms", json: `{"x":{"outputs":[{"preset":"mp3","ext":"mp3"}]}}`, err: "not both"},
		{name: "no outputs", json: `{"x":{"outputs":[]}}`, err: "outputs"},
		{name: "too many outputs", json: `{"x":{"outputs":[` + strings.Repeat(`{"preset":"mp3"},`, 8) + `{"preset":"mp3"}]}}`, err: "outputs"},
		{name: "same extension", json: `{"x":{"outputs":[{"preset":"mp3"},{"name":"m2","ext":"mp3","args":[]}]}}`, err: "extension"},
		{name: "same name", json: `{"x":{"outputs":[{"preset":"mp3"},{"name":"mp3","ext":"opus","args":[]}]}}`, err: "named"},
		{name: "optional audio", json: `{"x":{"outputs":[{"preset":"mp3","optional":true}]}}`, err: "optional"},
		{name: "bad name", json: `{"X":{"outputs":[{"preset":"mp3"}]}}`, err: "name"},
		{name: "unknown field", json: `{"x":{"outputs":[{"preset":"mp3"}],"shell":"sh"}}`, err: "unknown field"},
		{name: "negative slots", json: `{"x":{"outputs":[{"preset":"mp3"}],"slots":-1}}`, err: "slots"},
		{name: "too many slots", json: `{"x":{"outputs":[{"preset":"mp3"}],"slots":65}}`, err: "slots"},
		{name: "inline unsafe", json: `{"x":{"outputs":[{"name":"a","ext":"mp3","args":["-b:a","96k -i x"]}]}}`, err: "not valid"},
		{name: "hls segment option", json: `{"x":{"outputs":[{"name":"a","ext":"m3u8","args":["-hls_time","1"]}]}}`, err: "not allowed"},
		{name: "not an object", json: `[]`, err: "JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Load(tt.presets)
			if err != nil {
				t.Fatal(err)
			}
			ps, err := LoadProfiles(s, tt.json)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("LoadProfiles = %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, ps)
			}
		})
	}
}

func TestMaxWallClock(t *testing.T) {
	ps := DefaultProfiles()
	base := 30 * time.Minute
	tests := []struct {
		profile string
		size    int64
		want    time.Duration
	}{
		{"mp3", 0, base},
		{"mp3", 1, base + time.Second},
		{"mp3", 100 << 20, base + time.Minute},
		{"mp3", 150 << 20, base + 90*time.Second},
		{"thumbnail", 10 << 30, base},
		{"web", 1 << 30, base + 40*time.Minute + 58*time.Second}, // 40.96 min, rounded up
		{"hls", 500 << 20, base + 5*8*time.Minute},
		{"podcast", 300 << 20, base + 3*2*time.Minute},
		{"hls", 1 << 50, 7 * 24 * time.Hour},
	}
	for _, tt := range tests {
		p, _ := ps.Get(tt.profile)
		if got := p.MaxWallClock(base, tt.size); got != tt.want {
			t.Errorf("%s on %d bytes: got %v, want %v", tt.profile, tt.size, got, tt.want)
		}
	}
}

func TestParseResult(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Result
		err  bool
	}{
		{name: "ok", in: "ffpipe-result 1\nsource audio=1 video=1 height=720 duration=8.000000\noutput 0 rung=360 duration=8.000000 height=360\noutput 1 skipped\nok\n",
			want: Result{OK: true, Source: SourceFacts{Audio: true, Video: true, Height: 720, Duration: 8},
				Outputs: []OutputResult{{Index: 0, Rung: 360, Duration: 8, Height: 360}, {Index: 1, Skipped: true}}}},
		{name: "failed", in: "ffpipe-result 1\nfailed no_video the input has no video stream\n",
			want: Result{Code: "no_video", Message: "the input has no video stream"}},
		{name: "n/a duration", in: "ffpipe-result 1\noutput 0 duration=N/A\nok\n", want: Result{OK: true, Outputs: []OutputResult{{}}}},
		{name: "control characters dropped", in: "ffpipe-result 1\nfailed not_media bad\x1b[31m input\n", want: Result{Code: "not_media", Message: "bad[31m input"}},
		{name: "no header", in: "ok\n", err: true},
		{name: "other version", in: "ffpipe-result 2\nok\n", err: true},
		{name: "no verdict", in: "ffpipe-result 1\nsource audio=1\n", err: true},
		{name: "text after verdict", in: "ffpipe-result 1\nok\noutput 0\n", err: true},
		{name: "bad code", in: "ffpipe-result 1\nfailed No-Video x\n", err: true},
		{name: "negative", in: "ffpipe-result 1\noutput 0 duration=-1\nok\n", err: true},
		{name: "nan", in: "ffpipe-result 1\noutput 0 duration=NaN\nok\n", err: true},
		{name: "index", in: "ffpipe-result 1\noutput 9 height=1\nok\n", err: true},
		{name: "unknown field", in: "ffpipe-result 1\noutput 0 size=1\nok\n", err: true},
		{name: "twice", in: "ffpipe-result 1\noutput 0 height=1 height=2\nok\n", err: true},
		{name: "bad flag", in: "ffpipe-result 1\nsource audio=yes\nok\n", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResult([]byte(tt.in))
			if tt.err {
				if !errors.Is(err, ErrBadResult) {
					t.Fatalf("err = %v, want ErrBadResult", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.OK != tt.want.OK || got.Code != tt.want.Code || got.Message != tt.want.Message || got.Source != tt.want.Source || !slices.Equal(got.Outputs, tt.want.Outputs) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseResult(f *testing.F) {
	f.Add([]byte("ffpipe-result 1\nsource audio=1 video=1 height=720 duration=8.000000\noutput 0 rung=360 duration=8 height=360\nok\n"))
	f.Add([]byte("ffpipe-result 1\nfailed no_video the input has no video stream\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResult(b)
		if err != nil {
			return
		}
		if r.OK == (r.Code != "") {
			t.Fatalf("ok=%v with code %q", r.OK, r.Code)
		}
		for _, o := range r.Outputs {
			if o.Index < 0 || o.Index >= MaxOutputs || o.Duration < 0 || o.Height < 0 {
				t.Fatalf("bad output %+v", o)
			}
		}
		if len(r.Message) > 200 || strings.ContainsAny(r.Message, "\n\r\x00") {
			t.Fatalf("message %q", r.Message)
		}
	})
}

// FuzzLoadProfiles: whatever FFPIPE_PROFILES holds, an accepted profile's
// task command line is one single-quoted sh script with one input.
func FuzzLoadProfiles(f *testing.F) {
	f.Add(`{"lecture":{"outputs":[{"preset":"mp3"},{"preset":"thumbnail","optional":true},{"name":"small","ext":"mp4","maxHeight":480,"args":["-crf","26"]}]}}`)
	f.Add(`{"x":{"outputs":[{"name":"h","ext":"m3u8","ladder":[240,720],"args":["-preset","fast"]}]}}`)
	f.Fuzz(func(t *testing.T, js string) {
		ps, err := LoadProfiles(Default(), js)
		if err != nil {
			return
		}
		for _, n := range ps.Names() {
			p, _ := ps.Get(n)
			cl := p.TaskCommandLine()
			if strings.Count(cl, "'") != 2 || !strings.HasPrefix(cl, "/bin/sh -c '") || strings.ContainsAny(cl, "\n\x00`") {
				t.Fatalf("profile %s: command line %q", n, cl)
			}
			script, ok := ScriptOf(cl)
			if !ok || script != p.Script() {
				t.Fatalf("profile %s: the command line does not carry the script", n)
			}
			if strings.ContainsAny(script, "\n\x00`") {
				t.Fatalf("profile %s: script %q", n, script)
			}
			if c := strings.Count(script, " -i input.mp4"); c == 0 {
				t.Fatalf("profile %s: no pinned input", n)
			}
		}
	})
}
