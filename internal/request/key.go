package request

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/ffpipe/ffpipe/internal/etags"
)

// KeyLen is the length of a key in characters.
const KeyLen = 32

// Key identifies one piece of work: one version (eTag) of one blob. It is
// the lowercase hex SHA-256 of "account/container/blob/etag" (eTag
// normalised by NormalizeETag), cut to KeyLen characters. It is the Service
// Bus MessageId, the Batch task id and the status record name; it matches
// ^[0-9a-f]{32}$, so it is a valid Batch id whatever the blob name is, and
// blob names that differ only in case get different keys.
func Key(account, container, blob, etag string) string {
	h := sha256.New()
	h.Write([]byte(account))
	h.Write([]byte{'/'})
	h.Write([]byte(container))
	h.Write([]byte{'/'})
	h.Write([]byte(blob))
	h.Write([]byte{'/'})
	h.Write([]byte(etags.Normalize(etag)))
	return hex.EncodeToString(h.Sum(nil))[:KeyLen]
}

// IsKey reports whether s has the shape of a key (32 lowercase hex digits).
func IsKey(s string) bool {
	if len(s) != KeyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
