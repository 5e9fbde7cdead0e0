package goldentest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// golden is the path of a golden file holding content ("" for none yet).
func golden(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "golden.txt")
	if content != "" {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestCompareAcceptsTheSameContent(t *testing.T) {
	if err := Compare(golden(t, "v1\n"), "v1\n", false, "go test -update"); err != nil {
		t.Fatal(err)
	}
}

func TestCompareShowsADifferenceAndHowToUpdate(t *testing.T) {
	path := golden(t, "v1\n")
	err := Compare(path, "v2\n", false, "go test -update")
	if err == nil || !strings.Contains(err.Error(), path+" is stale; run: go test -update") ||
		!strings.Contains(err.Error(), "--- got\nv1\n") || !strings.Contains(err.Error(), "--- want\nv2\n") {
		t.Fatalf("different content: %v", err)
	}
}

func TestCompareNamesHowToCreateAMissingFile(t *testing.T) {
	err := Compare(golden(t, ""), "v1\n", false, "go test -update")
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "go test -update") {
		t.Fatalf("a missing file: %v, want not-exist naming the update command", err)
	}
}

func TestCompareWithUpdateWritesTheFile(t *testing.T) {
	for _, before := range []string{"", "v1\n"} {
		path := golden(t, before)
		if err := Compare(path, "v2\n", true, "go test -update"); err != nil {
			t.Fatalf("update: %v", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "v2\n" {
			t.Fatalf("update over %q wrote %q", before, b)
		}
	}
}
