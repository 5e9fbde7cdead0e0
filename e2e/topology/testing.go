package topology

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// BuildT builds the CLI and the services of the repository above the working directory
// (RepoRoot, Build) into a new temporary directory of the test and returns both: the
// binaries are in work/bin (Options.BinDir), and the rest of work is the test's to use.
// It fails the test when the repository is not found or a build fails.
func BuildT(t testing.TB, ctx context.Context) (root, work string) {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	work = t.TempDir()
	began := time.Now()
	if err := Build(ctx, root, filepath.Join(work, "bin")); err != nil {
		t.Fatal(err)
	}
	t.Logf("binaries built in %s", time.Since(began).Round(time.Millisecond))
	return root, work
}

// StartPostgresT starts a private PostgreSQL server under dir for a test (StartPostgres),
// failing the test if it does not start; t.Cleanup stops it.
func StartPostgresT(t testing.TB, ctx context.Context, dir string) *Postgres {
	t.Helper()
	pg, err := StartPostgres(ctx, dir)
	if err != nil {
		t.Fatalf("private PostgreSQL: %v", err)
	}
	t.Cleanup(pg.Close)
	return pg
}

// StartT starts a topology for a test: it fails the test if the shape does not come up,
// and t.Cleanup SIGKILLs every process group (leaving nothing behind, even on failure) and,
// when the test failed, prints the end of every instance's log.
func StartT(t testing.TB, ctx context.Context, shape Shape, opts Options) *Topology {
	t.Helper()
	top, err := Start(ctx, shape, opts)
	if err != nil {
		t.Fatalf("topology: %v", err)
	}
	t.Cleanup(func() {
		top.Close()
		if t.Failed() {
			for _, in := range top.All() {
				t.Logf("--- end of %s's log:\n%s", in.Name, in.LogTail(3000))
			}
		}
	})
	return top
}
