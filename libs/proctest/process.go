package proctest

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// Process is a service binary a test runs as a child process, possibly several times in a
// row (restarts). Its output (stdout and stderr) accumulates across restarts and is safe to
// read while it runs.
type Process struct {
	// Name is the process's name in failure messages (e.g. "ticketflow dev").
	Name string
	// Path and Args are the binary and its arguments.
	Path string
	Args []string
	// Env is the whole environment (nil: the test's own).
	Env []string

	mu   sync.Mutex
	out  bytes.Buffer
	cmd  *exec.Cmd
	done chan struct{}
}

// Write appends to the output; the child's stdout and stderr go here.
func (p *Process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// Output is everything the process printed so far, over all its runs.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Start runs the binary. When readyURL is not empty it then waits (at most 60 s) until a GET
// of readyURL answers 200; the test fails, with the output, if the process exits first or is
// not ready in time.
func (p *Process) Start(t testing.TB, readyURL string) {
	t.Helper()
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = p.Env
	cmd.Stdout, cmd.Stderr = p, p
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done
	if readyURL == "" {
		return
	}
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get(readyURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			t.Fatalf("%s exited early:\n%s", p.Name, p.Output())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s not ready in time:\n%s", p.Name, p.Output())
}

// Exited is closed when the current run ends (nil before the first Start).
func (p *Process) Exited() <-chan struct{} { return p.done }

// Stop sends sig to the current run and waits for it to end, killing it after timeout. It
// reports whether the process ended on its own (false: it had to be killed). A process that
// is not running is left alone (true).
func (p *Process) Stop(sig os.Signal, timeout time.Duration) bool {
	if p.cmd == nil || p.cmd.Process == nil {
		return true
	}
	defer func() { p.cmd = nil }()
	select {
	case <-p.done:
		return true
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return false
	}
}
