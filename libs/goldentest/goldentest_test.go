package goldentest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	path := filepath.Join(t.TempDir(), "golden.txt")
	if err := Compare(path, "v1\n", false, "go test -update"); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "go test -update") {
		t.Fatalf("a missing file: %v, want not-exist naming the update command", err)
	}
	if err := Compare(path, "v1\n", true, "go test -update"); err != nil {
		t.Fatalf("update: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "v1\n" {
		t.Fatalf("update wrote %q", b)
	}
	if err := Compare(path, "v1\n", false, "go test -update"); err != nil {
		t.Fatalf("the same content: %v", err)
	}
	err := Compare(path, "v2\n", false, "go test -update")
	if err == nil || !strings.Contains(err.Error(), path+" is stale; run: go test -update") ||
		!strings.Contains(err.Error(), "--- got\nv1\n") || !strings.Contains(err.Error(), "--- want\nv2\n") {
		t.Fatalf("different content: %v", err)
	}
}
