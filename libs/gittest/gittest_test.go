package gittest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOriginHoldsFilesOnMain(t *testing.T) {
	url, bare := Origin(t, map[string]string{"ci.sh": "#!/bin/sh\necho ok\n", "src/a.txt": "a\n"})
	if url != "file://"+bare {
		t.Fatalf("url %q, bare %q", url, bare)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	Git(t, "", "clone", "--quiet", "--branch", "main", url, clone)
	if b, _ := os.ReadFile(filepath.Join(clone, "src", "a.txt")); string(b) != "a\n" {
		t.Errorf("src/a.txt = %q", b)
	}
	if fi, err := os.Stat(filepath.Join(clone, "ci.sh")); err != nil || fi.Mode()&0o100 == 0 {
		t.Errorf("ci.sh not executable: %v %v", fi, err)
	}
	if n := Git(t, bare, "rev-list", "--count", "main"); n != "1" {
		t.Errorf("main has %s commits, want 1", n)
	}
	if ls := Git(t, clone, "ls-files"); !strings.Contains(ls, "src/a.txt") {
		t.Errorf("ls-files: %q", ls)
	}
}
