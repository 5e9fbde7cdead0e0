// Package sandboxtest gives tests of sandboxed CI runs the directories the sandbox can use.
package sandboxtest

import (
	"os"
	"testing"
)

// Dir is a fresh directory, removed when the test ends, that the sandbox's unprivileged
// uid (65534) can traverse: t.TempDir()'s parent is private to the test's user, so work
// dirs and origins the sandbox reaches must live here.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ticketflow-sandbox-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
