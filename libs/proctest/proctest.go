// Package proctest helps tests that run a service as a real binary: build it once per test
// binary (Main, Build), give it free loopback addresses (FreeAddr) and run it as a child
// process that can be restarted, stopped with a signal and read (Process).
//
//	var binary string
//
//	func TestMain(m *testing.M) { proctest.Main(m, &binary, "processor", ".") }
package proctest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Build runs `go build [flags] -o out pkg` in dir ("" for the working directory). The
// error carries the compiler's output.
func Build(ctx context.Context, dir, out, pkg string, flags ...string) error {
	args := append(append([]string{"build"}, flags...), "-o", out, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// Main is a whole TestMain: it builds pkg with -race as a binary called name in a fresh
// temporary directory, stores its path in *binary, runs the tests, removes the directory and
// exits with the tests' code. A failed build exits 1 before any test runs.
func Main(m *testing.M, binary *string, name, pkg string) {
	dir, err := os.MkdirTemp("", "ticketflow-"+name+"-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "proctest:", err)
		os.Exit(1)
	}
	*binary = filepath.Join(dir, name)
	if err := Build(context.Background(), "", *binary, pkg, "-race"); err != nil {
		fmt.Fprintf(os.Stderr, "build %s: %v\n", name, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// FreeAddr is a loopback host:port that was free a moment ago (the listener is closed
// before it returns, so the process under test can bind it).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
