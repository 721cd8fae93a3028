package media

import "errors"

// Sentinel errors. Wrapped errors carry the details; compare with errors.Is.
var (
	// ErrVerify is wrapped by every VerifyAudio/VerifyImage mismatch, so a
	// harness can tell "the output is wrong" from "ffprobe could not run".
	ErrVerify = errors.New("media verification failed")
	// ErrBadSpec is returned for a ClipSpec or option that cannot be honoured.
	ErrBadSpec = errors.New("invalid media spec")
	// ErrProbe is wrapped when ffprobe rejects a file (not media, truncated
	// beyond repair) or prints output that cannot be parsed.
	ErrProbe = errors.New("probe failed")
)
