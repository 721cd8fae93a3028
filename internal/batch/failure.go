package batch

import (
	"strings"

	"github.com/ffpipe/ffpipe/internal/failure"
)

// Reason classifies the task's Batch failure info (executionInfo.failureInfo
// code): timeout for MaxWallClockTimeExpiry, upload_error for a FileUpload*
// code, input_missing for BlobNotFound, download_error for any other blob
// or download error. It returns "" when Batch's failure info names none of
// these (a non-zero exit code, or no failure): what ffmpeg did is then for
// presets.Classify to say.
func (t CompletedTask) Reason() failure.Reason {
	code := strings.ToLower(t.FailureCode)
	switch {
	case code == "maxwallclocktimeexpiry":
		return failure.Timeout
	case t.UploadFailed():
		return failure.UploadError
	case code == "blobnotfound":
		return failure.InputMissing
	case strings.Contains(code, "blob") || strings.Contains(code, "download"):
		return failure.DownloadError
	}
	return ""
}

// UploadFailed reports whether Batch failed the task on an output file
// upload (a FileUpload* failure code), whatever the command's exit code.
func (t CompletedTask) UploadFailed() bool {
	return strings.HasPrefix(strings.ToLower(t.FailureCode), "fileupload")
}
