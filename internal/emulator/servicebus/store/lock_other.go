//go:build !unix

package store

import "os"

// dirLocking reports whether lockDir really locks.
const dirLocking = false

// lockDir is a no-op where flock is not available.
func lockDir(dir string) (*os.File, error) { return nil, nil }
