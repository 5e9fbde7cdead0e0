package kafka

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFS flushes the file system holding dir (syncfs(2): that one only, not every mount).
func syncFS(dir *os.File) error { return unix.Syncfs(int(dir.Fd())) }
