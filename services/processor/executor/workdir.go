package executor

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
)

var unsafePathChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// InstanceWorkDir is this processor's own part of the work root: work dirs are per (instance,
// ticket), so a processor that took a run over never works in the directory of the one it
// fenced, which may still be running there (paused, then resumed).
func InstanceWorkDir(root, instance string) string {
	if root == "" {
		root = filepath.Join(os.TempDir(), "ticketflow-work")
	}
	name := unsafePathChars.ReplaceAllString(instance, "_")
	if name == "" || name[0] == '.' {
		name = "i" + name
	}
	return filepath.Join(root, name)
}

// LockInstanceDir takes an exclusive flock on the instance's work dir for the life of the
// process: a second process started with the same instance id on this host (and so the same
// work dirs) refuses to start instead of sharing them.
func LockInstanceDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("work dir %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".ticketflow-instance.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("work dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("work dir %s is in use by another processor with the same TICKETFLOW_INSTANCE_ID: %w", dir, err)
	}
	return f, nil
}
