// Package gittest makes local git repositories for tests: a bare origin with one commit on
// main (Origin, OriginAt), reachable as a file:// URL, and a git runner that fails the test
// (Git).
package gittest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// identity lets commits be made without any user configuration.
var identity = []string{"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t"}

// Git runs git with args in dir ("" for the working directory) and returns its trimmed
// combined output; a failure fails the test with that output.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), identity...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Origin makes a bare repository origin.git in a fresh t.TempDir() whose main branch has
// one commit holding files (name → content; names may contain slashes). It returns the
// repository's file:// URL and its path.
func Origin(t testing.TB, files map[string]string) (url, bare string) {
	t.Helper()
	bare = filepath.Join(t.TempDir(), "origin.git")
	return OriginAt(t, bare, files), bare
}

// OriginAt is Origin at the path bare (created, with its parents; it must not hold a
// repository yet) and returns its file:// URL. Files are written executable (0o755), so a
// CI script among them runs as ./ci.sh.
func OriginAt(t testing.TB, bare string, files map[string]string) string {
	t.Helper()
	seed := t.TempDir()
	Git(t, "", "init", "--quiet", "--bare", "--initial-branch=main", bare)
	Git(t, "", "init", "--quiet", "--initial-branch=main", seed)
	for name, content := range files {
		p := filepath.Join(seed, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	Git(t, seed, "add", ".")
	Git(t, seed, "commit", "--quiet", "--allow-empty", "-m", "init")
	Git(t, seed, "push", "--quiet", bare, "main")
	return "file://" + bare
}
