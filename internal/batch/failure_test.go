package batch

import (
	"testing"

	"github.com/ffpipe/ffpipe/internal/failure"
)

func TestCompletedTaskReason(t *testing.T) {
	tests := []struct {
		code       string
		want       failure.Reason
		wantUpload bool
	}{
		{"MaxWallClockTimeExpiry", failure.Timeout, false},
		{"maxwallclocktimeexpiry", failure.Timeout, false},
		{"FileUploadContainerNotFound", failure.UploadError, true},
		{"FileUploadMiscError", failure.UploadError, true},
		{"BlobNotFound", failure.InputMissing, false},
		{"BlobAccessDenied", failure.DownloadError, false},
		{"ResourceFileDownloadError", failure.DownloadError, false},
		{"FailureExitCode", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			ct := CompletedTask{FailureCode: tt.code}
			if got := ct.Reason(); got != tt.want {
				t.Errorf("Reason = %q, want %q", got, tt.want)
			}
			if got := ct.UploadFailed(); got != tt.wantUpload {
				t.Errorf("UploadFailed = %v, want %v", got, tt.wantUpload)
			}
		})
	}
}
