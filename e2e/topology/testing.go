package topology

import (
	"context"
	"testing"
)

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
