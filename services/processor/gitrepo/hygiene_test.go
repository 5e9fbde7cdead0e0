package gitrepo

import (
	"context"
	"errors"
	"github.com/ticketflow/ticketflow/libs/gittest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// plantHooks does what a hostile CI run could do to its clone: a post-checkout hook, and
// .git/config entries pointing hooks and fsmonitor at its own scripts. Each script writes
// marker when git runs it.
func plantHooks(t *testing.T, dir, marker string) {
	t.Helper()
	script := "#!/bin/sh\necho ran >> " + marker + "\n"
	evil := filepath.Join(dir, "evil")
	if err := os.MkdirAll(evil, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, ".git", "hooks", "post-checkout"), filepath.Join(evil, "post-checkout"), filepath.Join(evil, "fsmonitor")} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, ".git", "config"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("[core]\n\thooksPath = " + evil + "\n\tfsmonitor = " + filepath.Join(evil, "fsmonitor") + "\n[include]\n\tpath = " + filepath.Join(evil, "inc") + "\n"); err != nil {
		t.Fatal(err)
	}
}

// After CI planted hooks and config, the next git operations run none of them and the clone
// is re-created with the processor's own config.
func TestPlantedHooksAndConfigNeverRun(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "work", "ticket-1")
	g, url, _, commit := cloneHello(ctx, t, dir)
	marker := filepath.Join(t.TempDir(), "hook-ran")

	for name, op := range map[string]func() error{
		"ResetTo": func() error { return g.ResetTo(ctx, dir, commit) },
		"Sync":    func() error { _, err := g.Sync(ctx, url, "main", dir); return err },
		"Commit": func() error {
			_, err := g.Commit(ctx, dir, "ticketflow/t/1", "x")
			if !errors.Is(err, ErrTampered) {
				t.Errorf("Commit on a tampered work dir: %v, want ErrTampered", err)
			}
			return g.ResetTo(ctx, dir, commit)
		},
	} {
		plantHooks(t, dir, marker)
		if err := Verify(dir); err == nil {
			t.Fatalf("%s: Verify accepted a planted clone", name)
		}
		if err := op(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: a planted hook ran", name)
		}
		if err := Verify(dir); err != nil {
			t.Errorf("%s: clone not re-created: %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, ".git", "hooks", "post-checkout")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: planted hook still there", name)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "README.md")); string(b) != "hello\n" {
			t.Errorf("%s: README after re-clone %q", name, b)
		}
	}
}

// Even a config the verification would miss cannot make git run a hook or fsmonitor: the
// command line overrides both.
func TestCommandLineOverridesRepositoryConfig(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "w")
	g, _, _, commit := cloneHello(ctx, t, dir)
	marker := filepath.Join(t.TempDir(), "hook-ran")
	plantHooks(t, dir, marker)
	if _, err := g.local(ctx, dir, "checkout", "--quiet", "--force", "-B", "x", commit); err != nil {
		t.Fatal(err)
	}
	if _, err := g.local(ctx, dir, "status", "--porcelain"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a hook or fsmonitor from the repository's config ran")
	}
}

func TestVerifyRefusesRedirectedMetadata(t *testing.T) {
	ctx := context.Background()
	url, bare := gittest.Origin(t, map[string]string{"README.md": "hello\n"})
	g := New(Config{Policy: filePolicy(t, filepath.Dir(bare))})
	other := filepath.Join(t.TempDir(), "other")
	if _, err := g.Sync(ctx, url, "main", other); err != nil {
		t.Fatal(err)
	}
	for name, tamper := range map[string]func(dir string) error{
		".git symlink": func(dir string) error {
			if err := os.RemoveAll(filepath.Join(dir, ".git")); err != nil {
				return err
			}
			return os.Symlink(filepath.Join(other, ".git"), filepath.Join(dir, ".git"))
		},
		".git file": func(dir string) error {
			if err := os.RemoveAll(filepath.Join(dir, ".git")); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, ".git"), []byte("gitdir: "+filepath.Join(other, ".git")+"\n"), 0o644)
		},
		"symlinked refs": func(dir string) error {
			if err := os.RemoveAll(filepath.Join(dir, ".git", "refs")); err != nil {
				return err
			}
			return os.Symlink(filepath.Join(other, ".git", "refs"), filepath.Join(dir, ".git", "refs"))
		},
		"alternates": func(dir string) error {
			return os.WriteFile(filepath.Join(dir, ".git", "objects", "info", "alternates"), []byte(filepath.Join(other, ".git", "objects")+"\n"), 0o644)
		},
		"commondir": func(dir string) error {
			return os.WriteFile(filepath.Join(dir, ".git", "commondir"), []byte(filepath.Join(other, ".git")+"\n"), 0o644)
		},
		"sshCommand": func(dir string) error {
			return os.WriteFile(filepath.Join(dir, ".git", "config"), []byte(canonicalConfig+"\tsshCommand = touch /tmp/pwned\n"), 0o644)
		},
	} {
		dir := filepath.Join(t.TempDir(), "w")
		commit, err := g.Sync(ctx, url, "main", dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := tamper(dir); err != nil {
			t.Fatal(err)
		}
		if err := Verify(dir); err == nil {
			t.Errorf("%s: Verify accepted it", name)
		}
		if err := g.ResetTo(ctx, dir, commit); err != nil {
			t.Errorf("%s: ResetTo after tampering: %v", name, err)
		}
		if err := Verify(dir); err != nil {
			t.Errorf("%s: not re-created: %v", name, err)
		}
	}
	if err := Verify(other); err != nil {
		t.Errorf("the other clone was touched: %v", err)
	}
}

// safe.directory: a work tree owned by another uid (the sandbox's) is still usable.
func TestWorkTreeOwnedByAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "w")
	g, _, _, commit := cloneHello(ctx, t, dir)
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 65534, 65534)
	}); err != nil {
		t.Fatal(err)
	}
	if err := g.ResetTo(ctx, dir, commit); err != nil {
		t.Fatal(err)
	}
	if files, err := g.Files(ctx, dir); err != nil || !strings.Contains(strings.Join(files, ","), "README.md") {
		t.Fatalf("files %v %v", files, err)
	}
}
