package presets

import (
	"fmt"
	"strconv"
	"strings"
)

// Rung is one rendition of an HLS ladder: its height and rate control.
// The rates follow the common H.264 ladders (Apple's HLS authoring
// specification, table 1) rounded to a few steps; maxrate is 107% of the
// target and the buffer 1.5 s of it.
type Rung struct {
	Height       int
	VideoBitrate string
	MaxRate      string
	BufSize      string
	AudioBitrate string
}

// Name is the rung's rendition name and folder ("360p").
func (r Rung) Name() string { return strconv.Itoa(r.Height) + "p" }

var rungs = []Rung{
	{240, "400k", "428k", "600k", "64k"},
	{360, "800k", "856k", "1200k", "96k"},
	{480, "1400k", "1498k", "2100k", "128k"},
	{540, "2000k", "2140k", "3000k", "128k"},
	{720, "3000k", "3210k", "4500k", "128k"},
	{1080, "5000k", "5350k", "7500k", "192k"},
	{1440, "8000k", "8560k", "12000k", "192k"},
	{2160, "14000k", "14980k", "21000k", "192k"},
}

// Rungs returns the rung heights a ladder may use, ascending.
func Rungs() []int {
	hs := make([]int, len(rungs))
	for i, r := range rungs {
		hs[i] = r.Height
	}
	return hs
}

func rungFor(h int) (Rung, bool) {
	for _, r := range rungs {
		if r.Height == h {
			return r, true
		}
	}
	return Rung{}, false
}

// DefaultLadder is the hls preset's ladder: 360p, 540p, 720p, 1080p.
func DefaultLadder() []int { return []int{360, 540, 720, 1080} }

// HLS packaging, fixed by the kind (never configurable): 6 s segments of
// MPEG-TS, a keyframe forced every KeyframeSeconds of source time in every
// rung (so segment boundaries, at multiples of SegmentSeconds, fall on the
// same frames in every rung), a VOD playlist per rung and a master playlist.
const (
	SegmentSeconds  = 6
	KeyframeSeconds = 2
	// HLSDir is the node-local folder of an HLS output; HLSMaster is its
	// master playlist, and each rung writes HLSDir/<rung>/HLSPlaylist and
	// HLSDir/<rung>/seg_NNNNN.ts.
	HLSDir      = "hls"
	HLSMaster   = "master.m3u8"
	HLSPlaylist = "index.m3u8"
)

// The node-local name patterns an HLS output's files are uploaded with.
const (
	HLSMasterPattern    = HLSDir + "/*.m3u8"
	HLSPlaylistsPattern = HLSDir + "/*/*.m3u8"
	HLSSegmentsPattern  = HLSDir + "/*/*.ts"
	// SegmentContentType and PlaylistContentType are the content types of
	// an HLS output's blobs.
	PlaylistContentType = "application/vnd.apple.mpegurl"
	SegmentContentType  = "video/mp2t"
)

// pinnedDemuxer is the input demuxer of every task: MP4/QuickTime only, so
// a hostile input cannot steer ffmpeg into HLS, concat or AVI probing.
const pinnedDemuxer = "mov,mp4,m4a,3gp,3g2,mj2"

// globalArgs start every ffmpeg argv: run-wide options, in one place.
// -progress writes ffmpeg's progress (out_time_us=…, progress=continue|end)
// to ProgressFile in the task's working directory, where Status reads it
// through Batch's task-file API while the task runs.
func globalArgs() []string {
	return []string{Program, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-progress", ProgressFile}
}

// inputArgs are the hardened input options and the input: local files
// only, demuxer pinned (no probing into HLS/concat/AVI), no external mov
// references, only the decoders in dec.
func inputArgs(dec string) []string {
	return []string{
		"-protocol_whitelist", "file",
		"-f", pinnedDemuxer,
		"-enable_drefs", "0", "-use_absolute_path", "0",
		"-codec_whitelist", dec,
		"-i", InputFile,
	}
}

// outputTail ends every output: fail on the first error, and on an output
// that got no frame (a zero timescale made ffmpeg exit 0 with a
// header-only file; found by FuzzTaskWrapper), then the muxer and file.
func outputTail(muxer string, extra []string, file string) []string {
	argv := []string{"-xerror", "-abort_on", "empty_output_stream", "-f", muxer}
	argv = append(argv, extra...)
	return append(argv, "-y", file)
}

// scaleMax is the scale filter of MaxHeight: at most h lines, the source's
// height (rounded down to even) when smaller, width from the aspect ratio
// and even.
func scaleMax(h int) string {
	return fmt.Sprintf(`scale=-2:min(%d\,trunc(ih/2)*2)`, h)
}

// fileArgs are the output options of a file output (audio, image or video)
// written to file.
func (p Preset) fileArgs(file string) []string {
	f := formats[p.Ext]
	var argv []string
	switch f.kind {
	case KindAudio:
		argv = append(argv, "-map", "0:a:0", "-vn", "-sn", "-dn")
	case KindImage:
		argv = append(argv, "-map", "0:v:0", "-an", "-sn", "-dn")
	case KindVideo:
		// The audio is optional: a silent video stays a (silent) video.
		argv = append(argv, "-map", "0:v:0", "-map", "0:a:0?", "-sn", "-dn")
	}
	argv = append(argv, "-map_metadata", "-1")
	if p.MaxHeight > 0 {
		argv = append(argv, "-vf", scaleMax(p.MaxHeight))
	}
	argv = append(argv, p.Args...)
	var extra []string
	switch {
	case f.kind == KindImage:
		argv = append(argv, "-frames:v", "1")
		if f.muxer == "image2" {
			extra = []string{"-update", "1"}
		}
	case f.muxer == "mp4":
		extra = []string{"-movflags", "+faststart"}
	}
	return append(argv, outputTail(f.muxer, extra, file)...)
}

// hlsArgs are the output options of an HLS output with the first n rungs
// of its ladder, with or without audio, written under HLSDir.
func (p Preset) hlsArgs(n int, audio bool) []string {
	ladder := p.Ladder[:n]
	var graph strings.Builder
	if n == 1 {
		fmt.Fprintf(&graph, "[0:v:0]scale=-2:%d[v0]", ladder[0])
	} else {
		graph.WriteString("[0:v:0]split=" + strconv.Itoa(n))
		for i := range ladder {
			fmt.Fprintf(&graph, "[s%d]", i)
		}
		for i, h := range ladder {
			fmt.Fprintf(&graph, ";[s%d]scale=-2:%d[v%d]", i, h, i)
		}
	}
	argv := []string{"-filter_complex", graph.String()}
	var streamMap []string
	for i := range ladder {
		argv = append(argv, "-map", fmt.Sprintf("[v%d]", i))
		if audio {
			argv = append(argv, "-map", "0:a:0")
		}
	}
	argv = append(argv, "-sn", "-dn", "-map_metadata", "-1", "-c:v", "libx264", "-pix_fmt", "yuv420p")
	argv = append(argv, p.Args...)
	argv = append(argv, "-force_key_frames", fmt.Sprintf("expr:gte(t,n_forced*%d)", KeyframeSeconds), "-sc_threshold", "0")
	for i, h := range ladder {
		r, _ := rungFor(h)
		s := strconv.Itoa(i)
		argv = append(argv, "-b:v:"+s, r.VideoBitrate, "-maxrate:v:"+s, r.MaxRate, "-bufsize:v:"+s, r.BufSize)
		if audio {
			argv = append(argv, "-b:a:"+s, r.AudioBitrate)
		}
		name := Rung{Height: h}.Name()
		if audio {
			streamMap = append(streamMap, fmt.Sprintf("v:%d,a:%d,name:%s", i, i, name))
		} else {
			streamMap = append(streamMap, fmt.Sprintf("v:%d,name:%s", i, name))
		}
	}
	if audio {
		argv = append(argv, "-c:a", "aac", "-ac", "2")
	}
	extra := []string{
		"-hls_time", strconv.Itoa(SegmentSeconds), "-hls_playlist_type", "vod",
		"-hls_flags", "independent_segments", "-hls_segment_type", "mpegts",
		"-hls_segment_filename", HLSDir + "/%v/seg_%05d.ts",
		"-master_pl_name", HLSMaster,
		"-var_stream_map", strings.Join(streamMap, " "),
	}
	return append(argv, outputTail("hls", extra, HLSDir+"/%v/"+HLSPlaylist)...)
}

// OutputFile is the node-local output file name of a one-output task,
// "output.<ext>" ("hls/master.m3u8" for an HLS output).
func (p Preset) OutputFile() string {
	if p.Ext == "m3u8" {
		return HLSDir + "/" + HLSMaster
	}
	return OutputBase + "." + p.Ext
}

// Argv returns the full ffmpeg argv (Program first) of a validated preset
// as a one-output task; an HLS preset gets its whole ladder, with audio.
func (p Preset) Argv() []string {
	p = p.normalize()
	f := formats[p.Ext]
	argv := append(globalArgs(), inputArgs(decoders[f.kind])...)
	if f.kind == KindHLS {
		return append(argv, p.hlsArgs(len(p.Ladder), true)...)
	}
	return append(argv, p.fileArgs(p.OutputFile())...)
}

// CommandLine joins Argv with single spaces. For every kind but hls no
// argument contains white space or quotes, so the split on a shell-less
// node is unambiguous; the task itself runs TaskCommandLine.
func (p Preset) CommandLine() string { return strings.Join(p.Argv(), " ") }
