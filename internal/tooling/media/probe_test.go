package media

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestParseProbeGolden(t *testing.T) {
	tests := []struct {
		file string
		want Info
	}{
		{"probe-mp4.json", Info{
			FormatName: "mov,mp4,m4a,3gp,3g2,mj2", Duration: 7320 * time.Millisecond, Size: 324349,
			Streams: []Stream{
				{Index: 0, CodecName: "h264", CodecType: "video", Width: 160, Height: 120, Duration: 7320 * time.Millisecond},
				{Index: 1, CodecName: "aac", CodecType: "audio", Channels: 2, SampleRate: 48000, Duration: 7300 * time.Millisecond},
			},
		}},
		{"probe-mp3.json", Info{
			FormatName: "mp3", Duration: 7344 * time.Millisecond, Size: 30772,
			Streams: []Stream{
				{Index: 0, CodecName: "mp3", CodecType: "audio", Channels: 2, SampleRate: 48000,
					Duration: 7344 * time.Millisecond, StartTime: 23021 * time.Microsecond},
			},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseProbe(data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseProbe(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
		wantDur time.Duration
		audio   bool
	}{
		{"na-values", `{"format":{"duration":"N/A","size":"N/A"},"streams":[{"codec_type":"audio","sample_rate":"N/A","duration":"N/A"}]}`, false, 0, true},
		{"stream-falls-back-to-format", `{"format":{"duration":"3.5"},"streams":[{"codec_type":"audio","sample_rate":"8000"}]}`, false, 3500 * time.Millisecond, true},
		{"start-time-subtracted", `{"format":{},"streams":[{"codec_type":"audio","duration":"2.05","start_time":"0.05"}]}`, false, 2 * time.Second, true},
		{"negative-start-ignored", `{"format":{},"streams":[{"codec_type":"audio","duration":"2","start_time":"-0.02"}]}`, false, 2 * time.Second, true},
		{"no-audio", `{"format":{"duration":"1"},"streams":[{"codec_type":"video"}]}`, false, 0, false},
		{"empty-object", `{}`, false, 0, false},
		{"not-json", `moov atom not found`, true, 0, false},
		{"bad-duration", `{"format":{"duration":"abc"}}`, true, 0, false},
		{"huge-duration", `{"format":{"duration":"1e300"}}`, true, 0, false},
		{"nan-duration", `{"format":{"duration":"NaN"}}`, true, 0, false},
		{"bad-rate", `{"streams":[{"sample_rate":"fast"}]}`, true, 0, false},
		{"bad-size", `{"format":{"size":"1.5"}}`, true, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := ParseProbe([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrProbe) {
					t.Errorf("got %v, want ErrProbe", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d, ok := info.AudioDuration()
			if ok != tt.audio || d != tt.wantDur {
				t.Errorf("AudioDuration: got %v, %v; want %v, %v", d, ok, tt.wantDur, tt.audio)
			}
		})
	}
}

func FuzzParseProbe(f *testing.F) {
	for _, name := range []string{"probe-mp4.json", "probe-mp3.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"format":{"duration":"N/A"},"streams":[{"codec_type":"audio","start_time":"9e9","duration":"-9e9"}]}`))
	f.Add([]byte(`{"streams":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParseProbe(data)
		if err != nil {
			if !errors.Is(err, ErrProbe) {
				t.Fatalf("error %v does not wrap ErrProbe", err)
			}
			return
		}
		// Must not panic, and the derived values must be consistent.
		d, ok := info.AudioDuration()
		if ok != (len(info.AudioStreams()) > 0) {
			t.Fatalf("AudioDuration ok=%v with %d audio streams", ok, len(info.AudioStreams()))
		}
		if !ok && d != 0 {
			t.Fatalf("AudioDuration %v without audio", d)
		}
		_ = describe(info)
	})
}
