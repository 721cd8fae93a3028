//go:build unix

package store

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// dirLocking reports whether lockDir really locks.
const dirLocking = true

// lockDir takes an exclusive advisory lock on dir/LOCK so that two
// processes never append to the same log. The lock goes with the process.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("store directory %s is in use by another store: %w", dir, err)
	}
	return f, nil
}
