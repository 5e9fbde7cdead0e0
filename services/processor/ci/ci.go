// Package ci runs a ticket's CI command: `sh -c <command>` in the work directory, in its own
// process group, with a minimal environment and a timeout, streaming every output line as it
// is written. Cancelling the context (or the timeout) kills the whole process group, so
// background children of the script die with it.
package ci

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec is one CI execution.
type Spec struct {
	Dir     string
	Command string
	// Env is the complete environment of the command (see MinimalEnv); nothing else from
	// this process leaks in.
	Env     []string
	Timeout time.Duration
	// TailLines is how many of the last output lines Result.Tail keeps (default 30).
	TailLines int
	// PIDFile, when set, records the process group id while the command runs (see KillStale).
	PIDFile string
	// Network lets the command reach the network (only when the ticket's repository is
	// configured to allow it); sandboxes cut it off otherwise.
	Network bool
	// Limits bound the command's resources (enforced by the sandboxes).
	Limits Limits
}

// Result is the outcome of a finished command.
type Result struct {
	// ExitCode is the command's exit status; -1 when it was killed by the timeout or a signal.
	ExitCode int
	TimedOut bool
	Duration time.Duration
	// Tail is the last lines of stdout and stderr as they were interleaved.
	Tail string
}

// Passed reports a zero exit status within the timeout.
func (r Result) Passed() bool { return r.ExitCode == 0 && !r.TimedOut }

// Line is one line of output.
type Line struct {
	Stream string // "stdout" or "stderr"
	Text   string
}

// LineFunc receives the output as it comes, from a single goroutine: each call carries the
// lines available at that moment (at least one, at most maxBatch), in order per stream. A
// slow callback makes lines accumulate into bigger batches rather than slowing the command
// line by line. An error stops the command (it is killed) and is returned by Run.
type LineFunc func(lines []Line) error

// maxBatch bounds the lines of one LineFunc call.
const maxBatch = 256

// maxLine bounds one delivered line; longer lines are split.
const maxLine = 16 << 10

// MinimalEnv is the environment a CI command gets: enough to run tools (PATH, HOME, locale,
// TMPDIR) and nothing of the processor's configuration, so provider keys and git tokens are
// out of its reach.
func MinimalEnv(extra ...string) []string {
	env := []string{"CI=true", "TERM=dumb", "LANG=C.UTF-8"}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if _, ok := os.LookupEnv("PATH"); !ok {
		env = append(env, "PATH=/usr/local/bin:/usr/bin:/bin")
	}
	return append(env, extra...)
}

// Run executes spec and calls onLine for every line. It returns an error only when the
// command could not run or was cancelled (ctx) or onLine failed; a failing command is a
// Result with a non-zero ExitCode.
func Run(ctx context.Context, spec Spec, onLine LineFunc) (Result, error) {
	if strings.TrimSpace(spec.Command) == "" {
		return Result{}, errors.New("no CI command configured for this ticket")
	}
	cmd := exec.Command("sh", "-c", spec.Command)
	cmd.Dir = spec.Dir
	cmd.Env = spec.Env
	if cmd.Env == nil {
		cmd.Env = MinimalEnv()
	}
	return execute(ctx, spec, cmd, onLine)
}

// execute runs cmd (built for spec: the command itself or a sandbox wrapping it) as the leader
// of its own process group and streams its output; killing the group stops the command.
func execute(ctx context.Context, spec Spec, cmd *exec.Cmd, onLine LineFunc) (Result, error) {
	if spec.TailLines <= 0 {
		spec.TailLines = 30
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	outR, outW, err := os.Pipe()
	if err != nil {
		return Result{}, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return Result{}, err
	}
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = outW, errW
	start := time.Now()
	if err := cmd.Start(); err != nil {
		for _, f := range append([]*os.File{outR, outW, errR, errW}, cmd.ExtraFiles...) {
			if f != nil {
				f.Close()
			}
		}
		return Result{}, fmt.Errorf("start CI command: %w", err)
	}
	outW.Close()
	errW.Close()
	for _, f := range cmd.ExtraFiles {
		if f != nil {
			f.Close() // the child's copies: the parent keeps its own ends
		}
	}
	pgid := cmd.Process.Pid
	killGroup := func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) }
	if err := writePIDFile(spec.PIDFile, pgid); err != nil {
		killGroup()
		_ = cmd.Wait()
		outR.Close()
		errR.Close()
		return Result{}, fmt.Errorf("record CI process group: %w", err)
	}
	if spec.PIDFile != "" {
		defer os.Remove(spec.PIDFile)
	}

	lines := make(chan Line, 4*maxBatch)
	var readers sync.WaitGroup
	for _, s := range []struct {
		name string
		r    io.Reader
	}{{"stdout", outR}, {"stderr", errR}} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			readLines(s.r, func(text string) { lines <- Line{s.name, text} })
		}()
	}
	go func() { readers.Wait(); close(lines) }()

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	timeout := spec.Timeout
	if timeout <= 0 {
		timeout = 24 * time.Hour
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()

	var (
		res      Result
		tail     []string
		waitErr  error
		done     bool // process exited
		drained  bool // every line delivered
		stopErr  error
		linesCh  = lines
		graceEnd <-chan time.Time
	)
	for !(done && drained) {
		select {
		case l, ok := <-linesCh:
			if !ok {
				drained, linesCh = true, nil
				continue
			}
			batch := []Line{l}
		more:
			for len(batch) < maxBatch {
				select {
				case l, ok := <-linesCh:
					if !ok {
						drained, linesCh = true, nil
						break more
					}
					batch = append(batch, l)
				default:
					break more
				}
			}
			for _, l := range batch {
				tail = append(tail, l.Text)
			}
			if len(tail) > spec.TailLines {
				tail = tail[len(tail)-spec.TailLines:]
			}
			if stopErr == nil {
				if err := onLine(batch); err != nil {
					stopErr = err
					killGroup()
				}
			}
		case waitErr = <-exited:
			done, exited = true, nil
			// Background children may still hold the pipes: the group goes with its leader,
			// after a short grace for output already written.
			graceEnd = time.After(200 * time.Millisecond)
		case <-graceEnd:
			graceEnd = nil
			killGroup()
		case <-timer.C:
			res.TimedOut = true
			killGroup()
		case <-ctx.Done():
			if stopErr == nil {
				stopErr = ctx.Err()
			}
			killGroup()
			ctx = context.Background() // fire once; keep draining until the group is gone
		}
	}
	outR.Close()
	errR.Close()
	killGroup()
	res.Duration = time.Since(start)
	res.Tail = strings.Join(tail, "\n")
	var exitErr *exec.ExitError
	switch {
	case waitErr == nil:
		res.ExitCode = 0
	case errors.As(waitErr, &exitErr):
		res.ExitCode = exitErr.ExitCode() // -1 when killed by a signal
	default:
		return res, fmt.Errorf("wait for CI command: %w", waitErr)
	}
	if res.TimedOut {
		res.ExitCode = -1
		res.Tail = strings.TrimSpace(res.Tail + fmt.Sprintf("\nCI command timed out after %s", timeout))
	}
	return res, stopErr
}

// readLines splits r into lines (without the newline; \r\n tolerated), splitting lines longer
// than maxLine, and delivers a last unterminated line too.
func readLines(r io.Reader, deliver func(string)) {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		chunk, isPrefix, err := br.ReadLine()
		if len(chunk) > 0 || (err == nil && !isPrefix) {
			deliver(strings.TrimRight(string(chunk), "\r"))
		}
		if err != nil {
			return
		}
	}
}
