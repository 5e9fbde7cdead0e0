package ci

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type recorder struct {
	mu    sync.Mutex
	lines []string
	at    []time.Time
}

func (r *recorder) line(lines []Line) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range lines {
		r.lines = append(r.lines, l.Stream+": "+l.Text)
		r.at = append(r.at, time.Now())
	}
	return nil
}

func TestStreamsLinesLiveAndReportsExitCode(t *testing.T) {
	dir := t.TempDir()
	script := "echo one; echo two >&2; sleep 1; printf 'three\\nno-newline'; exit 3"
	rec := &recorder{}
	start := time.Now()
	res, err := Run(context.Background(), Spec{Dir: dir, Command: script, Timeout: 20 * time.Second}, rec.line)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || res.Passed() || res.TimedOut {
		t.Errorf("result %+v, want exit code 3", res)
	}
	// Order holds within a stream; stdout and stderr are separate pipes.
	var stdout, stderr []string
	for _, l := range rec.lines {
		if s, ok := strings.CutPrefix(l, "stdout: "); ok {
			stdout = append(stdout, s)
		} else {
			stderr = append(stderr, strings.TrimPrefix(l, "stderr: "))
		}
	}
	if strings.Join(stdout, "|") != "one|three|no-newline" || strings.Join(stderr, "|") != "two" {
		t.Errorf("lines %q", rec.lines)
	}
	if d := rec.at[1].Sub(start); d > 800*time.Millisecond {
		t.Errorf("first line delivered after %s: not streamed while the command ran", d)
	}
	if !strings.HasSuffix(res.Tail, "three\nno-newline") {
		t.Errorf("tail %q", res.Tail)
	}
}

func TestEnvironmentIsMinimal(t *testing.T) {
	t.Setenv("ANTHROPIC_API_KEY", "sk-ant-must-not-leak")
	t.Setenv("TICKETFLOW_GIT_TOKEN", "ghp-must-not-leak")
	rec := &recorder{}
	res, err := Run(context.Background(), Spec{Dir: t.TempDir(), Command: "env", Env: MinimalEnv("TICKETFLOW_TICKET=t1")}, rec.line)
	if err != nil || !res.Passed() {
		t.Fatalf("%+v %v", res, err)
	}
	all := strings.Join(rec.lines, "\n")
	if strings.Contains(all, "must-not-leak") || !strings.Contains(all, "PATH=") || !strings.Contains(all, "TICKETFLOW_TICKET=t1") {
		t.Errorf("environment:\n%s", all)
	}
}

// pidOf starts a script that leaves a background sleep whose pid it writes to a file.
func backgroundSleep(t *testing.T) (dir, script string, pid func() int) {
	dir = t.TempDir()
	pidFile := filepath.Join(dir, "sleep.pid")
	script = "sleep 1000 & echo $! > sleep.pid; echo started; wait"
	return dir, script, func() int {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
}

func gone(pid int) bool {
	// The killed sleep is reparented and reaped by init; until then it is a zombie.
	for i := 0; i < 100; i++ {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err == nil && strings.Contains(string(b), ") Z ") {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func TestCancelKillsTheProcessGroup(t *testing.T) {
	dir, script, pid := backgroundSleep(t)
	ctx, cancel := context.WithCancel(context.Background())
	onLine, started := closeOnLine("started")
	errc := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Spec{Dir: dir, Command: script, Timeout: time.Minute}, onLine)
		errc <- err
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("script did not start")
	}
	p := pid()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if !gone(p) {
		syscall.Kill(p, syscall.SIGKILL)
		t.Fatalf("background sleep %d survived the cancel", p)
	}
}

func TestTimeoutKillsTheProcessGroup(t *testing.T) {
	dir, script, pid := backgroundSleep(t)
	res, err := Run(context.Background(), Spec{Dir: dir, Command: script, Timeout: 700 * time.Millisecond}, func([]Line) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut || res.ExitCode != -1 || res.Passed() || !strings.Contains(res.Tail, "timed out") {
		t.Errorf("result %+v", res)
	}
	if p := pid(); !gone(p) {
		syscall.Kill(p, syscall.SIGKILL)
		t.Fatalf("background sleep %d survived the timeout", p)
	}
}

func TestBackgroundChildDoesNotHoldTheRunOpen(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	res, err := Run(context.Background(), Spec{Dir: dir, Command: "sleep 1000 & echo $! > sleep.pid; echo done", Timeout: time.Minute}, func([]Line) error { return nil })
	if err != nil || !res.Passed() {
		t.Fatalf("%+v %v", res, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %s: a background child kept it waiting", d)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "sleep.pid"))
	if p, _ := strconv.Atoi(strings.TrimSpace(string(b))); p > 0 && !gone(p) {
		syscall.Kill(p, syscall.SIGKILL)
		t.Errorf("background sleep %d left running", p)
	}
}

func TestLineCallbackErrorStopsTheCommand(t *testing.T) {
	stop := errors.New("event log down")
	start := time.Now()
	_, err := Run(context.Background(), Spec{Dir: t.TempDir(), Command: "while true; do echo x; sleep 0.01; done", Timeout: time.Minute},
		func([]Line) error { return stop })
	if !errors.Is(err, stop) || time.Since(start) > 5*time.Second {
		t.Errorf("err %v after %s", err, time.Since(start))
	}
}

// A CI group orphaned by a processor killed mid-run is found through its pid file and killed.
func TestKillStaleKillsAnOrphanedGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(t.TempDir(), "ci.pid")
	// Simulate the orphan: a group started elsewhere that records itself like Run does.
	cmd := exec.Command("sh", "-c", "sleep 1000 & echo $! > sleep.pid; wait")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	var sleepPID int
	for i := 0; i < 100 && sleepPID == 0; i++ {
		b, _ := os.ReadFile(filepath.Join(dir, "sleep.pid"))
		sleepPID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		time.Sleep(20 * time.Millisecond)
	}
	if killed, err := KillStale(pidFile, t.TempDir()); killed || err != nil {
		t.Fatalf("killed a group working in another directory: %v %v", killed, err)
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if killed, err := KillStale(pidFile, dir); !killed || err != nil {
		t.Fatalf("KillStale: %v %v", killed, err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("group leader survived")
	}
	if !gone(sleepPID) {
		syscall.Kill(sleepPID, syscall.SIGKILL)
		t.Fatal("background child survived")
	}
	if _, err := os.Stat(pidFile); !errors.Is(err, os.ErrNotExist) {
		t.Error("pid file left behind")
	}
}

// Output written faster than the callback consumes it arrives in batches, complete and in order.
func TestFastOutputIsBatchedInOrder(t *testing.T) {
	calls := 0
	var got []string
	res, err := Run(context.Background(), Spec{Dir: t.TempDir(), Command: "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done", Timeout: time.Minute},
		func(lines []Line) error {
			calls++
			for _, l := range lines {
				got = append(got, l.Text)
			}
			time.Sleep(2 * time.Millisecond) // a slow consumer (the event log)
			return nil
		})
	if err != nil || !res.Passed() {
		t.Fatalf("%+v %v", res, err)
	}
	if len(got) != 3000 || got[0] != "line0" || got[2999] != "line2999" {
		t.Fatalf("%d lines", len(got))
	}
	for i, l := range got {
		if l != "line"+strconv.Itoa(i) {
			t.Fatalf("line %d is %q", i, l)
		}
	}
	if calls >= 3000 {
		t.Errorf("%d callbacks for 3000 lines: no batching", calls)
	}
}

// closeOnLine is a LineFunc that closes the returned channel once a line equal to want has
// been delivered: the test then knows the command is running.
func closeOnLine(want string) (LineFunc, <-chan struct{}) {
	seen := make(chan struct{})
	var once sync.Once
	return func(lines []Line) error {
		for _, l := range lines {
			if l.Text == want {
				once.Do(func() { close(seen) })
			}
		}
		return nil
	}, seen
}
