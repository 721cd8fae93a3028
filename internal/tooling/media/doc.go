// Package media makes and checks the media files that the demo (make run),
// the chaos harness and the benchmark feed through ffpipe.
//
// It lives under internal/emulator because production code must never
// import it: it shells out to the ffmpeg and ffprobe found on PATH (the
// Debian package; make deps installs it) and exists only for tests and
// tooling.
//
//   - Generate / GenerateSet make synthetic MP4s (testsrc2 video, sine or
//     pink-noise audio, H.264 ultrafast + AAC, moov first) with byte-for-byte
//     deterministic output for a given ClipSpec, optionally through a
//     read-only cache keyed by ClipSpec.Key().
//   - Probe reads ffprobe's JSON (ParseProbe is the fuzzed parser);
//     VerifyAudio and VerifyImage check pipeline outputs, and
//     ExpectedAudioDuration gives the number to check them against.
//   - PoisonSet builds the edge-case inputs of the test plan
//     (docs/reliability.md#poison-and-edge-case-inputs), each with the outcome the pipeline
//     must reach.
//   - Baseline and TimeFFmpeg time plain ffmpeg runs: the "xargs -P cores
//     ffmpeg" throughput baseline and ffmpeg's own share of a latency.
//
// Every ffmpeg this package runs is bounded by the caller's context.
package media
