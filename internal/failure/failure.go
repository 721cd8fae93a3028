// Package failure names why a piece of work did not produce its output:
// the reason codes that begin a status record's reason, as in
// "decode_error: exit code 65; stderr: …". Status, operators, the chaos
// ledger and the poison-file expectations branch on these codes, so each
// has one definition here and a string form that never changes.
//
// The record format is "<code>" or "<code>: <detail>" (Reason.With); Parse
// reads the code back. docs/reasons.md lists every code with what it means
// and what happens to the input; a test keeps the two in step.
//
// Classification lives beside what produces a failure: ffmpeg's exit code
// and stderr in internal/presets (presets.Classify), Batch's failure info in
// internal/batch (CompletedTask.Reason), request validation in
// internal/request (request.Code). Sweep only combines them.
package failure

import (
	"fmt"
	"strings"
)

// Reason is a stable reason code: lower-case words joined by "_".
type Reason string

// Reasons found before any work runs (OnBlobCreated, Dispatch,
// reconcile). The record's state says which kind of refusal it was
// (rejected, bad_request, input_missing, failed).
const (
	// Empty: the input blob has no content.
	Empty Reason = "empty"
	// TooLarge: the input is above FFPIPE_MAX_INPUT_BYTES, or a request
	// message is above request.MaxBodyBytes.
	TooLarge Reason = "too_large"
	// BadRequest: the request message can never succeed as sent (bad
	// JSON, a missing field, a container other than the configured ones).
	BadRequest Reason = "bad_request"
	// UnsupportedVersion: the message's "v" is newer than this code.
	UnsupportedVersion Reason = "unsupported_version"
	// NameTooLong: a blob name, usually the generated output name, is over
	// 1,024 characters.
	NameTooLong Reason = "name_too_long"
	// UnknownPreset: the request names a preset that is not configured.
	UnknownPreset Reason = "unknown_preset"
	// UnknownProfile: the request's profile field, the upload's
	// ffpipe_profile metadata or an FFPIPE_ROUTES rule names a profile
	// that is not configured.
	UnknownProfile Reason = "unknown_profile"
	// BadName: a blob name Azure rejects or that is unsafe downstream
	// (control characters, "." or ".." segments).
	BadName Reason = "bad_name"
	// InputMissing: the input, in the version the request names, was gone
	// before its task could read it (deleted, or replaced by a newer
	// upload, which has a key of its own).
	InputMissing Reason = "input_missing"
	// BatchRejected: Batch refused to add the task for good: an invalid
	// task spec, or a ClientError for that one task.
	BatchRejected Reason = "batch_rejected"
)

// Reasons found by Sweep once the task completed.
const (
	// Timeout: the task ran past its maximum wall-clock time
	// (FFPIPE_TASK_MAX_WALL_CLOCK).
	Timeout Reason = "timeout"
	// DownloadError: Batch could not download the input (a resource file
	// error other than a missing blob). Sweep dispatches again, a bounded
	// number of times.
	DownloadError Reason = "download_error"
	// UploadError: Batch could not upload the output (a FileUpload* error).
	// Sweep dispatches again, a bounded number of times.
	UploadError Reason = "upload_error"
	// NoOutput: the task succeeded but the output blob is missing or empty.
	// Sweep dispatches again, a bounded number of times.
	NoOutput Reason = "no_output"
	// DecodeError: the input is damaged: ffmpeg failed decoding it, or
	// logged errors while exiting 0 (the task wrapper's exit 65).
	DecodeError Reason = "decode_error"
	// NotMedia: the input is not an MP4/MOV file (the pinned demuxer
	// found no movie in it).
	NotMedia Reason = "not_media"
	// NoAudio: an output that needs audio (an audio preset) met an input
	// without an audio stream.
	NoAudio Reason = "no_audio"
	// NoVideo: an output that needs a picture (video, HLS, a required
	// thumbnail) met an input without a video stream (cover art does not
	// count).
	NoVideo Reason = "no_video"
	// NoRung: the input is below the lowest rung of an HLS ladder, and
	// HLS never upscales.
	NoRung Reason = "no_rung"
	// VerifyFailed: an output failed the node's verification after
	// encoding (it does not decode, lacks a stream its kind needs, lasts
	// too long or too short, or has the wrong height; an HLS playlist
	// lists a missing segment). docs/profiles.md has the checks.
	VerifyFailed Reason = "verify_failed"
	// TaskFailed: the task failed for a reason none of the other codes
	// names; the record's detail has the exit code, Batch's failure info
	// and the end of stderr.
	TaskFailed Reason = "task_failed"
	// UnknownTask: a completed task carries no readable request and no
	// record says which file it was for.
	UnknownTask Reason = "unknown_task"
)

// all lists every reason in the order docs/reasons.md shows them.
var all = []Reason{
	Empty, TooLarge, BadRequest, UnsupportedVersion, NameTooLong, UnknownPreset, UnknownProfile, BadName, InputMissing, BatchRejected,
	Timeout, DownloadError, UploadError, NoOutput, DecodeError, NotMedia, NoAudio, NoVideo, NoRung, VerifyFailed, TaskFailed, UnknownTask,
}

// All returns every reason code, in documentation order.
func All() []Reason { return append([]Reason(nil), all...) }

// String is the stable string form: the code as records carry it.
func (r Reason) String() string { return string(r) }

// Known reports whether r is one of the codes defined here.
func (r Reason) Known() bool {
	for _, k := range all {
		if r == k {
			return true
		}
	}
	return false
}

// Infrastructure reports whether r says nothing about the input: storage
// or node trouble while moving files. Batch does not retry a failed
// resource download or output upload
// (docs/platform.md#batch-does-not-retry-transfers), so Sweep dispatches
// such work again, a bounded number of times, instead of quarantining a
// good file as poison.
func (r Reason) Infrastructure() bool {
	return r == DownloadError || r == UploadError || r == NoOutput
}

// With is the record's reason text: the code, then ": " and detail when
// detail is not empty.
func (r Reason) With(detail string) string {
	if detail == "" {
		return string(r)
	}
	return string(r) + ": " + detail
}

// Withf is With with a formatted detail.
func (r Reason) Withf(format string, args ...any) string {
	return r.With(fmt.Sprintf(format, args...))
}

// Parse reads the code at the start of a record's reason (what With
// writes). It reports false when the reason does not begin with a known
// code, as for a non-terminal record ("retrying at … after …").
func Parse(reason string) (Reason, bool) {
	code, _, _ := strings.Cut(reason, ":")
	r := Reason(strings.TrimSpace(code))
	if !r.Known() {
		return "", false
	}
	return r, true
}
