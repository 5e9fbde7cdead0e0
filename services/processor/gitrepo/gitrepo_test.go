package gitrepo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ticketflow/ticketflow/libs/gittest"
	"github.com/ticketflow/ticketflow/libs/repourl"
)

// filePolicy accepts file:// repositories under root.
func filePolicy(t *testing.T, root string) *repourl.Policy {
	t.Helper()
	p, err := repourl.New(repourl.Config{FileRoot: root}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// cloneHello syncs dir from a new one-file origin (README.md "hello") with a Git whose policy
// allows it; it returns the Git, the origin's URL and bare path, and the commit checked out.
func cloneHello(ctx context.Context, t *testing.T, dir string) (g *Git, url, bare, commit string) {
	t.Helper()
	url, bare = gittest.Origin(t, map[string]string{"README.md": "hello\n"})
	g = New(Config{Policy: filePolicy(t, filepath.Dir(bare))})
	commit, err := g.Sync(ctx, url, "main", dir)
	if err != nil {
		t.Fatal(err)
	}
	return g, url, bare, commit
}

func TestSyncCommitPushAndRunBranches(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "work", "ticket-1")
	g, url, bare, base := cloneHello(ctx, t, dir)
	if err := WriteFile(dir, "src/new.txt", "content\n"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "untracked-junk"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	commit, err := g.Commit(ctx, dir, "ticketflow/ticket-1/1", "change 1")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Push(ctx, dir, "ticketflow/ticket-1/1"); err != nil {
		t.Fatal(err)
	}
	if got := gittest.Git(t, bare, "rev-parse", "refs/heads/ticketflow/ticket-1/1"); got != commit {
		t.Errorf("origin branch at %s, want %s", got, commit)
	}
	if got := gittest.Git(t, bare, "show", "refs/heads/ticketflow/ticket-1/1:src/new.txt"); got != "content" {
		t.Errorf("pushed file %q", got)
	}
	if err := g.Push(ctx, dir, "ticketflow/ticket-1/3"); err != nil {
		t.Fatal(err)
	}
	ns, err := g.RunBranches(ctx, dir, "ticketflow/ticket-1")
	if err != nil || !slices.Equal(ns, []int{3, 1}) {
		t.Errorf("run branches %v %v", ns, err)
	}

	// A second Sync over the dirty work dir starts clean from main again.
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("dirty"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := g.Sync(ctx, url, "main", dir)
	if err != nil || again != base {
		t.Fatalf("resync: %s %v, want %s", again, err, base)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "README.md")); string(b) != "hello\n" {
		t.Errorf("README after resync: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "src/new.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file of the run branch still there after resync: %v", err)
	}
	// Fetching the run branch restores it.
	c, err := g.FetchBranch(ctx, dir, "ticketflow/ticket-1/1")
	if err != nil || c != commit {
		t.Fatalf("fetch run branch: %s %v", c, err)
	}
	if err := g.ResetTo(ctx, dir, c); err != nil {
		t.Fatal(err)
	}
	if files, _ := g.Files(ctx, dir); !slices.Contains(files, "src/new.txt") {
		t.Errorf("files %v", files)
	}
}

func TestSyncRejectsUnknownBranchAndBadInput(t *testing.T) {
	ctx := context.Background()
	url, bare := gittest.Origin(t, map[string]string{"README.md": "hello\n"})
	dir := filepath.Join(t.TempDir(), "w")
	g := New(Config{Policy: filePolicy(t, filepath.Dir(bare))})
	if _, err := g.Sync(ctx, url, "nope", dir); err == nil {
		t.Error("clone of a missing branch succeeded")
	}
	if _, err := g.Sync(ctx, url, "--upload-pack=touch /tmp/pwned", dir); err == nil {
		t.Error("option-like branch accepted")
	}
	noFile, err := repourl.New(repourl.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Policy: noFile}).Sync(ctx, url, "main", dir); !errors.Is(err, repourl.ErrRefused) {
		t.Errorf("file:// accepted without a root: %v", err)
	}
	if _, err := New(Config{Policy: filePolicy(t, t.TempDir())}).Sync(ctx, url, "main", dir); !errors.Is(err, repourl.ErrRefused) {
		t.Errorf("file:// outside the root accepted: %v", err)
	}
}

func TestSafePath(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"", "/etc/passwd", "../x", "a/../../x", ".git/config", ".GIT/hooks/pre-commit", "link/file", "link", "a\x00b", "."} {
		if _, err := SafePath(root, p); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("%q accepted (%v)", p, err)
		}
	}
	for _, p := range []string{"a.txt", "dir/sub/b.go", "./c", "d/../e", ".github/workflows/x.yml"} {
		if _, err := SafePath(root, p); err != nil {
			t.Errorf("%q refused: %v", p, err)
		}
	}
	if err := WriteFile(root, "link/escape.txt", "x"); err == nil {
		t.Error("wrote through a symlink")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("file written outside the repository: %v", entries)
	}
}
