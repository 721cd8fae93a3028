package presets

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// ExitDamagedInput was the task's exit code when ffmpeg exited 0 but logged
// an error. Tasks made by this version exit 0 with a "failed decode_error"
// ResultFile instead (see TaskCommandLine); Sweep still reads the code on
// tasks made before.
const ExitDamagedInput = 65

// Node-local files of the task wrapper (relative to the working directory).
const (
	// ResultFile holds the wrapper's verdict (see ParseResult). It is
	// uploaded to the logs container whatever the outcome.
	ResultFile = "result.txt"
	// ProgressFile is ffmpeg's -progress output and DurationFile the
	// source's duration in seconds (probed first): together the percent
	// done of a running task (batch.Client.Progress).
	ProgressFile = "progress.txt"
	DurationFile = "duration.txt"
	// errLog is where the wrapper keeps ffmpeg's and ffprobe's stderr.
	errLog = "ffmpeg.log"
	// scratch files, removed before the wrapper exits
	scratchLog = "v.txt"
	scratchRes = "v.res"
	probeOut   = "v.probe"
)

// DurationTolerance is how far an output's duration may be from the
// source's (the source's first audio stream for audio outputs, its first
// video stream for video and HLS ones): DurationSlack plus
// DurationTolerancePermille thousandths of the source's duration. The
// slack covers encoder delay and padding (an MP3 frame is 26 ms, an AAC
// frame 23 ms) and the last partial GOP of a segment.
const (
	DurationSlack             = 0.5 // seconds
	DurationTolerancePermille = 5
)

// benignStderr are the error-level lines a clean run prints: the refusal of
// the decoder for a stream the task does not use (the codec whitelist at
// work) and ffmpeg's repeat counter.
var benignStderr = []string{"not on whitelist", "Last message repeated"}

// nodeTools are the programs the wrapper runs (besides sh's built-ins).
var nodeTools = []string{Program, "ffprobe", "awk", "grep", "cut", "tr", "cat", "rm", "mkdir"}

// nodeTrouble are stderr phrases of failures that belong to the node, not
// to the input: the task exits non-zero and Batch runs it again.
var nodeTrouble = []string{"No space left", "Cannot allocate memory", "Input/output error", "Permission denied"}

// TaskCommandLine is the Batch task command line of a one-output task of
// p: OneOutput(p).TaskCommandLine().
func (p Preset) TaskCommandLine() string { return OneOutput(p).TaskCommandLine() }

// TaskCommandLine is the Batch task command line: a fixed /bin/sh -c script
// (Batch's documented way to get a shell) that probes the input, runs
// ffmpeg, verifies every output and writes ResultFile. Like Argv, it holds
// no byte of any request: the script is a constant per profile.
//
// How it ends:
//   - success: exit 0, every output verified, ResultFile "ok" with each
//     output's duration and height;
//   - a deterministic failure (not media, no audio or no video for an
//     output that needs it, a damaged input, an output that fails
//     verification): every output removed, ResultFile "failed <code>
//     <message>", and exit 0, so Batch does not run it again (Batch retries
//     every non-zero exit up to maxTaskRetryCount and has no per-exit-code
//     "do not retry"; docs/profiles.md);
//   - a transient failure (ffmpeg killed or missing, disk full, out of
//     memory, I/O errors): outputs and ResultFile removed, exit non-zero, so
//     Batch retries it.
//
// ffmpeg's stderr is copied to the task's stderr.txt, so Sweep's failure
// reason shows it.
//
// The command line carries the script gzip-compressed and base64-encoded
// (PackScript), unpacked on the node by a fixed loader: a script is 4–14
// KB, and every byte of it is encoded by Dispatch, sent, decoded and
// stored by Batch for every task, which bounded Dispatch's rate
// (docs/performance.md; Batch's guidance is a short command line). base64
// and gzip are in every Linux image Batch supports (coreutils, gzip); a
// node without them exits 127, a transient failure, like a node without
// ffmpeg.
func (p Profile) TaskCommandLine() string {
	script := p.script()
	if cl, ok := commandLines.Load(script); ok {
		return cl.(string)
	}
	// Compressing costs ten times as much as building the script (and
	// 800 KB of garbage; BenchmarkTaskCommandLine), and Dispatch asks for
	// every task: each distinct script is packed once.
	cl := "/bin/sh -c '" + unpackLoader(PackScript(script)) + "'"
	if packedCount.Load() < maxPacked {
		if _, loaded := commandLines.LoadOrStore(script, cl); !loaded {
			packedCount.Add(1)
		}
	}
	return cl
}

// commandLines caches TaskCommandLine by script (a command line is a
// function of its script alone). Profiles are configuration, so a process
// sees a few; maxPacked bounds the cache whatever it is given.
var (
	commandLines sync.Map // script → command line
	packedCount  atomic.Int64
)

const maxPacked = 256

// Script is the wrapper script that TaskCommandLine carries packed: what
// the node runs.
func (p Profile) Script() string { return p.script() }

// unpackLoader is the fixed shell text that unpacks a packed script and
// runs it in the same shell (its exit status is the task's). The script
// goes through an argument, never stdin: ffmpeg and the loops of the
// script must not read it. eval parses a copy of its argument, so the
// script may set S itself (it does).
func unpackLoader(packed string) string {
	return `S=$(echo ` + packed + ` | base64 -d | gzip -dc) || { echo "ffpipe: cannot unpack the task script: base64 or gzip failed or is missing on the node (transient: the task runs again)" >&2; exit 127; }; eval "$S"`
}

// PackScript is script gzip-compressed (best compression, no name, no
// time: the same script always packs to the same text) and base64-encoded
// (standard alphabet, which needs no quoting inside single quotes).
func PackScript(script string) string {
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		panic(err) // only for an invalid level
	}
	// Writes to a bytes.Buffer cannot fail.
	_, _ = zw.Write([]byte(script))
	_ = zw.Close()
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

// UnpackScript reverses PackScript.
func UnpackScript(packed string) (string, error) {
	z, err := base64.StdEncoding.DecodeString(packed)
	if err != nil {
		return "", fmt.Errorf("unpack script: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return "", fmt.Errorf("unpack script: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(zr, 1<<20))
	if err != nil {
		return "", fmt.Errorf("unpack script: %w", err)
	}
	return string(b), nil
}

// ScriptOf returns the script a task command line made by
// TaskCommandLine carries, and false for any other command line.
func ScriptOf(commandLine string) (string, bool) {
	inner, ok := strings.CutPrefix(commandLine, "/bin/sh -c '")
	if !ok || !strings.HasSuffix(inner, "'") {
		return "", false
	}
	packed, ok := strings.CutPrefix(strings.TrimSuffix(inner, "'"), "S=$(echo ")
	if !ok {
		return "", false
	}
	packed, _, ok = strings.Cut(packed, " ")
	if !ok || commandLine != "/bin/sh -c '"+unpackLoader(packed)+"'" {
		return "", false
	}
	script, err := UnpackScript(packed)
	return script, err == nil
}

// shArg renders one fixed argument for the script: bare when it holds only
// characters sh gives no meaning to, otherwise double-quoted (the fixed
// filter graphs, "0:a:0?" and the HLS stream map; none holds " $ ` \ other
// than the filter-escaped "\,", which double quotes keep).
func shArg(a string) string {
	for i := 0; i < len(a); i++ {
		c := a[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.,:=+/%", c) >= 0) {
			return `"` + a + `"`
		}
	}
	return a
}

// scriptSafe reports an argument that shArg could not render exactly.
func scriptSafe(a string) error {
	if a == "" {
		return fmt.Errorf("empty argument")
	}
	if strings.ContainsAny(strings.ReplaceAll(a, `\,`, ""), "'\"$`\\\n") {
		return fmt.Errorf("argument %q holds a quote, $, backquote, backslash or newline", a)
	}
	return nil
}

func shJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = shArg(a)
	}
	return strings.Join(out, " ")
}

// script builds the wrapper; each statement is joined with "; " into one
// line (no newlines in a Batch command line).
type script struct{ stmts []string }

func (s *script) add(format string, args ...any) {
	s.stmts = append(s.stmts, fmt.Sprintf(format, args...))
}

func grepAny(flags string, phrases []string) string {
	var b strings.Builder
	b.WriteString("grep " + flags)
	for _, s := range phrases {
		b.WriteString(` -e "` + s + `"`)
	}
	return b.String()
}

func (p Profile) needs(k Kind) bool {
	for _, o := range p.Outputs {
		if o.needs() == k && !o.Optional {
			return true
		}
	}
	return false
}

func (p Profile) script() string {
	var s script
	var files []string
	for i := range p.Outputs {
		f := p.OutputFile(i)
		if p.Outputs[i].Kind == KindHLS {
			f = HLSDir
		}
		files = append(files, f)
	}
	files = append(files, scratchLog, scratchRes, probeOut, ProgressFile, DurationFile)
	s.add("set -f")
	s.add(`O="%s"`, strings.Join(files, " "))
	s.add("rm -rf $O %s %s", ResultFile, errLog)
	// F: a deterministic failure; T: a transient one.
	s.add(`F() { rm -rf $O; echo "ffpipe-result 1" > %s; echo "failed $1 $2" >> %[1]s; echo "ffpipe: $1: $2" >&2; exit 0; }`, ResultFile)
	s.add(`T() { rm -rf $O %s; echo "ffpipe: $1 (transient: the task runs again)" >&2; exit $2; }`, ResultFile)
	// A node without the tools is the node's problem: retried elsewhere,
	// never taken for a fact about the input (a missing grep would read as
	// "no audio").
	s.add(`for c in %s; do command -v $c >/dev/null || T "$c is missing on the node" 127; done`, strings.Join(nodeTools, " "))
	// C: judge an ffmpeg run by its exit code and stderr.
	s.add(`C() { cat %s >&2; if [ $1 -ge 126 ]; then T "ffmpeg could not run or was killed (exit $1)" $1; fi; `+
		`if [ $1 -ne 0 ]; then %s %s && T "ffmpeg hit a node problem (exit $1)" $1; F decode_error "ffmpeg failed on the input (exit $1)"; fi; `+
		`if %s %s | grep -q "[^[:space:]]"; then F decode_error "ffmpeg reported errors (damaged input), outputs discarded"; fi; }`,
		errLog, grepAny("-q -i", nodeTrouble), errLog, grepAny("-v", benignStderr), errLog)
	// S: the input's demuxer and decoders, pinned as for ffmpeg.
	s.add(`S="-v error %s"`, strings.Join(inputArgs(decoders[KindHLS])[:len(inputArgs(""))-2], " "))
	// SC: the same without the codec whitelist (see probeSource).
	s.add(`SC="-v error %s"`, strings.Join(inputArgs("")[:len(inputArgs(""))-4], " "))
	// G: a value from the probe file ($1 its flat key; quotes removed);
	// K: the index of the first stream of type $1 there. ffprobe and
	// ffmpeg cost ~60 ms of CPU each to start (their shared libraries), so
	// every file is opened by one process that answers every question,
	// never one process per question.
	s.add(`G() { grep -m 1 "^$1=" %s | cut -d= -f2- | tr -d "\""; }`, probeOut)
	s.add(`K() { grep -m 1 "^streams.stream.[0-9]*.codec_type=.$1.$" %s | cut -d. -f3; }`, probeOut)
	// M: are two durations within DurationTolerance of the second?
	s.add(`M() { awk -v a="$1" -v b="$2" "BEGIN{d=a-b; if(d<0)d=-d; exit !(b>0 && d<=%g+b*%g)}"; }`, DurationSlack, float64(DurationTolerancePermille)/1000)
	// D: does an output decode without an error, and what is it? ($1 the
	// file, $2 "-f hls" or nothing): one ffprobe decodes every frame of
	// every stream (-count_frames) and reports AI/VI (first audio/video
	// stream), OD (duration) and OH (first video stream's height).
	s.add(`D() { ffprobe -v error -protocol_whitelist file $2 -count_frames -show_entries stream=codec_type,height,nb_read_frames:format=duration -of flat "$1" >%s 2>%s && [ ! -s %[2]s ] || return 1; `+
		`AI=$(K audio); VI=$(K video); OD=$(G format.duration); OH=""; [ -n "$VI" ] && OH=$(G streams.stream.$VI.height); return 0; }`, probeOut, scratchLog)
	p.probeSource(&s)
	p.encode(&s)
	for i, o := range p.Outputs {
		p.verify(&s, i, o)
	}
	s.add(`{ echo "ffpipe-result 1"; echo "source audio=$A video=$V height=$H duration=$FD"; cat %s; echo ok; } > %s`, scratchRes, ResultFile)
	s.add("rm -f %s %s %s", scratchLog, scratchRes, probeOut)
	return strings.Join(s.stmts, "; ")
}

// probeSource reads the input's facts: A and V (0/1: an audio stream, a
// video stream that is not cover art), H (height), FD, AD, VD (format,
// audio and video durations), and fails early for what no output can
// survive.
func (p Profile) probeSource(s *script) {
	const entries = "format=duration:stream=codec_type,duration,height:stream_disposition=attached_pic"
	s.add(`ffprobe $S -show_entries %s -of flat %s >%s 2>%s; rc=$?`, entries, InputFile, probeOut, errLog)
	// ffprobe opens a decoder for every stream to print it, and one that
	// the codec whitelist refuses (a MagicYUV video beside an AAC track)
	// makes it exit 1 although the file is fine media for the streams the
	// profile uses. Then read the container's facts alone: no stream
	// information is looked for, so no packet is decoded; ffmpeg's
	// whitelist still decides what gets decoded.
	s.add(`if [ $rc -ne 0 ] && grep -q "not on whitelist" %s; then ffprobe $SC -nofind_stream_info -show_entries %s -of flat %s >%s 2>%[1]s; rc=$?; fi`, errLog, entries, InputFile, probeOut)
	s.add(`if [ $rc -ne 0 ]; then cat %s >&2; if [ $rc -ge 126 ]; then T "ffprobe could not run (exit $rc)" $rc; fi; %s %s && T "ffprobe hit a node problem" $rc; `+
		`F not_media "the input is not an MP4 or QuickTime file ffmpeg can read"; fi`, errLog, grepAny("-q -i", nodeTrouble), errLog)
	s.add(`FD=$(G format.duration); AI=$(K audio); VI=$(K video); AD=""; VD=""; H=""; PIC=""`)
	s.add(`echo "$FD" > %s`, DurationFile)
	s.add(`if [ -n "$AI" ]; then AD=$(G streams.stream.$AI.duration); [ -n "$AD" ] || AD=N/A; fi`)
	s.add(`if [ -n "$VI" ]; then VD=$(G streams.stream.$VI.duration); H=$(G streams.stream.$VI.height); PIC=$(G streams.stream.$VI.disposition.attached_pic); fi`)
	s.add(`A=0; [ -n "$AD" ] && A=1`)
	s.add(`case "$H" in ""|*[!0-9]*) H=0;; esac`)
	s.add(`V=0; [ "$H" -gt 0 ] && [ "$PIC" != 1 ] && V=1`)
	s.add(`case "$AD" in ""|N/A) AD=$FD;; esac; case "$VD" in ""|N/A) VD=$FD;; esac`)
	if p.needs(KindVideo) {
		s.add(`[ $V = 1 ] || F no_video "the input has no video stream"`)
	}
	if p.needs(KindAudio) {
		s.add(`[ $A = 1 ] || F no_audio "the input has no audio stream"`)
	}
}

// encode runs ffmpeg: one invocation for every output but the images
// (decode once, encode to all), then one per image output (cheap: the
// thumbnail filter reads the first frames), skipped when optional and
// the input has no video.
func (p Profile) encode(s *script) {
	var main []int
	kinds := map[Kind]bool{}
	for i, o := range p.Outputs {
		if o.Kind != KindImage {
			main = append(main, i)
			kinds[o.Kind] = true
		}
	}
	if len(main) > 0 {
		dec := decoders[KindAudio]
		if kinds[KindVideo] || kinds[KindHLS] {
			dec = decoders[KindHLS]
		}
		head := append(globalArgs(), inputArgs(dec)...)
		h := p.HLS()
		if h < 0 {
			argv := slices.Clone(head)
			for _, i := range main {
				argv = append(argv, p.Outputs[i].fileArgs(p.OutputFile(i))...)
			}
			s.add("%s 2>%s; C $?", shJoin(argv), errLog)
		} else {
			ladder := p.Outputs[h].Ladder
			s.add("N=0")
			for k, r := range ladder {
				s.add(`[ "$H" -ge %d ] && N=%d`, r, k+1)
			}
			s.add(`[ $N -gt 0 ] || F no_rung "the input is $H lines high, below the lowest rung (%dp); HLS never upscales"`, ladder[0])
			s.add("mkdir %s", HLSDir)
			// The shared head once (plain words: set -f, no quoting needed),
			// then one argv per number of rungs, with and without audio.
			s.add(`I="%s"`, shJoin(head[1:]))
			var cases []string
			for n := 1; n <= len(ladder); n++ {
				for _, audio := range []bool{true, false} {
					var argv []string
					for _, i := range main {
						if i == h {
							argv = append(argv, p.Outputs[i].hlsArgs(n, audio)...)
						} else {
							argv = append(argv, p.Outputs[i].fileArgs(p.OutputFile(i))...)
						}
					}
					a := map[bool]string{true: "1", false: "0"}[audio]
					cases = append(cases, fmt.Sprintf("%d%s) %s $I %s 2>%s;;", n, a, Program, shJoin(argv), errLog))
				}
			}
			s.add(`case "$N$A" in %s esac; C $?`, strings.Join(cases, " "))
		}
	}
	for i, o := range p.Outputs {
		if o.Kind != KindImage {
			continue
		}
		argv := append(globalArgs(), inputArgs(decoders[KindImage])...)
		argv = append(argv, o.fileArgs(p.OutputFile(i))...)
		run := fmt.Sprintf("%s 2>%s; C $?", shJoin(argv), errLog)
		if o.Optional {
			run = "if [ $V = 1 ]; then " + run + "; fi"
		}
		s.add("%s", run)
	}
}

// verify checks output i as the verification list says: it exists
// and decodes, it has the streams its kind needs, its duration is within
// DurationTolerance, and a video's height is the one asked for and never
// above the source's; an HLS output's master lists every kept rung, whose
// playlist is finished and lists only segments that exist.
func (p Profile) verify(s *script, i int, o Output) {
	f := p.OutputFile(i)
	tag := "output " + o.Name
	fail := func(msg string) string { return fmt.Sprintf(`F verify_failed "%s %s"`, tag, msg) }
	decodes := func(file, fmtArg, what string) string {
		return fmt.Sprintf(`D %s "%s" || { cat %s >&2; %s; }`, file, fmtArg, scratchLog, fail(strings.TrimSpace(what+" does not decode")))
	}
	switch o.Kind {
	case KindAudio:
		s.add(`[ -s %s ] || %s`, f, fail("is missing or empty"))
		s.add("%s", decodes(f, "", ""))
		s.add(`[ -n "$AI" ] || %s`, fail("has no audio stream"))
		s.add(`M "$OD" "$AD" || %s`, fail("lasts $OD s, the source audio $AD s"))
		s.add(`echo "output %d duration=$OD" >> %s`, i, scratchRes)
	case KindImage:
		check := fmt.Sprintf(`[ -s %s ] || %s; %s; [ -n "$OH" ] || %s; echo "output %d height=$OH" >> %s`,
			f, fail("is missing or empty"), decodes(f, "", ""), fail("has no picture"), i, scratchRes)
		if o.Optional {
			check = fmt.Sprintf(`if [ $V = 1 ]; then %s; else echo "output %d skipped" >> %s; fi`, check, i, scratchRes)
		}
		s.add("%s", check)
	case KindVideo:
		s.add(`[ -s %s ] || %s`, f, fail("is missing or empty"))
		s.add("%s", decodes(f, "", ""))
		s.add(`[ -n "$OH" ] || %s`, fail("has no video stream"))
		s.add(`[ "$OH" -le "$H" ] || %s`, fail("is $OH lines high, above the source ($H)"))
		if want := o.wantHeight(); want != "" {
			s.add(`E=%s; [ "$OH" = "$E" ] || %s`, want, fail("is $OH lines high, want $E"))
		}
		s.add(`[ $A = 0 ] || [ -n "$AI" ] || %s`, fail("lost the audio"))
		s.add(`M "$OD" "$VD" || %s`, fail("lasts $OD s, the source video $VD s"))
		s.add(`echo "output %d duration=$OD height=$OH" >> %s`, i, scratchRes)
	case KindHLS:
		master := HLSDir + "/" + HLSMaster
		s.add(`[ -s %s ] || %s`, master, fail("has no master playlist"))
		for k, h := range o.Ladder {
			name := Rung{Height: h}.Name()
			pl := HLSDir + "/" + name + "/" + HLSPlaylist
			rf := func(msg string) string { return fail(name + " " + msg) }
			var c []string
			c = append(c, fmt.Sprintf(`grep -qx "%s/%s" %s || %s`, name, HLSPlaylist, master, fail("master does not list "+name)))
			c = append(c, fmt.Sprintf(`[ -s %s ] && grep -q "^#EXT-X-ENDLIST" %[1]s || %s`, pl, rf("playlist is missing or unfinished")))
			c = append(c, fmt.Sprintf(`while read l; do case "$l" in "#"*|"") ;; seg_[0-9]*.ts) [ -s "%s/$l" ] || %s;; *) %s;; esac; done < %s`,
				HLSDir+"/"+name, rf("lists a missing segment"), rf("lists an unexpected entry"), pl))
			c = append(c, decodes(pl, "-f hls", name))
			c = append(c, fmt.Sprintf(`[ "$OH" = %d ] || %s`, h, rf("is $OH lines high")))
			c = append(c, fmt.Sprintf(`[ $A = 0 ] || [ -n "$AI" ] || %s`, rf("lost the audio")))
			c = append(c, fmt.Sprintf(`M "$OD" "$VD" || %s`, rf("lasts $OD s, the source video $VD s")))
			c = append(c, fmt.Sprintf(`echo "output %d rung=%d duration=$OD height=$OH" >> %s`, i, h, scratchRes))
			s.add("if [ $N -ge %d ]; then %s; fi", k+1, strings.Join(c, "; "))
		}
	}
}

// wantHeight is the shell expression of a video output's expected height
// ("" when only "not above the source" applies): MaxHeight, or the
// source's height rounded down to even when smaller; or the scale filter's
// explicit height.
func (o Output) wantHeight() string {
	if o.MaxHeight > 0 {
		return fmt.Sprintf(`$(( H - H %% 2 > %d ? %[1]d : H - H %% 2 ))`, o.MaxHeight)
	}
	for i := 0; i+1 < len(o.Args); i += 2 {
		if o.Args[i] == "-vf" || o.Args[i] == "-filter:v" {
			_, h, _ := strings.Cut(o.Args[i+1], ":")
			if n, err := strconv.Atoi(h); err == nil && n > 0 {
				return strconv.Itoa(n)
			}
		}
	}
	return ""
}
