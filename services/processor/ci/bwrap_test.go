package ci

import (
	"context"
	"github.com/ticketflow/ticketflow/libs/sandboxtest"
	"net"
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

// newTestBwrap builds the sandbox, or skips the test when bwrap cannot run here.
func newTestBwrap(t *testing.T) *Bwrap {
	t.Helper()
	b, err := NewBwrap(context.Background(), BwrapConfig{}, sandboxtest.Dir(t))
	if err != nil {
		t.Skipf("bwrap cannot run on this machine, sandbox tests skipped (install bubblewrap; user namespaces must be allowed): %v", err)
	}
	return b
}

// workTree is a work dir with a .git directory, as a clone has.
func workTree(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(sandboxtest.Dir(t), "ticket")
	if out, err := exec.Command("git", "init", "--quiet", dir).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v %s", err, out)
	}
	return dir
}

func runBwrap(t *testing.T, b *Bwrap, spec Spec) (Result, []string, error) {
	t.Helper()
	var mu sync.Mutex
	var out []string
	if spec.Timeout == 0 {
		spec.Timeout = 30 * time.Second
	}
	res, err := b.Run(context.Background(), spec, func(lines []Line) error {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range lines {
			out = append(out, l.Text)
		}
		return nil
	})
	return res, out, err
}

func has(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

// What the command can and cannot see and touch.
func TestBwrapIsolation(t *testing.T) {
	b := newTestBwrap(t)
	t.Setenv("TICKETFLOW_JWT_SECRET", "jwt-secret-of-the-processor")
	dir := workTree(t)
	sibling := filepath.Join(filepath.Dir(dir), "other-ticket")
	if err := os.MkdirAll(sibling, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sibling, "secret.txt"), []byte("other tenant\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	script := strings.Join([]string{
		`echo "uid=$(id -u)"`,
		`echo "pwd=$(pwd)"`,
		`echo "procs=$(ls /proc | grep -c '^[0-9]')"`,
		`cat /proc/[0-9]*/environ 2>/dev/null | tr '\0' '\n' | grep -q jwt-secret-of && echo env-leak`,
		`env | grep -q TICKETFLOW_JWT_SECRET && echo env-var-leak`,
		`test -e ` + sibling + `/secret.txt && echo sibling-visible`,
		`test -e ` + filepath.Dir(dir) + ` && echo work-root-visible`,
		`test -e /run && echo run-visible`,
		`bash -c 'echo x > /dev/tcp/127.0.0.1/` + port + `' 2>/dev/null && echo connected`,
		`touch .git/hooks/post-checkout 2>/dev/null && echo git-writable`,
		`(echo x >> .git/config) 2>/dev/null && echo git-config-writable`,
		`echo ok > made-by-ci && echo tree-writable`,
		`touch /usr/planted 2>/dev/null && echo usr-writable`,
		`cat /etc/shadow 2>/dev/null | grep -q root && echo shadow-readable`,
		`echo ok > "$HOME/x" && echo home-writable`,
		`echo ok > /tmp/x && echo tmp-writable`,
		`echo "host=$(hostname)"`,
		`unshare -U true 2>/dev/null && echo nested-userns`,
		`true`,
	}, "\n")
	res, out, err := runBwrap(t, b, Spec{Dir: dir, Command: script, Env: MinimalEnv("TICKETFLOW_TICKET_ID=t1")})
	if err != nil || !res.Passed() {
		t.Fatalf("%+v %v\n%s", res, err, strings.Join(out, "\n"))
	}
	for _, want := range []string{"uid=1000", "pwd=/work", "tree-writable", "home-writable", "tmp-writable", "host=ci"} {
		if !has(out, want) {
			t.Errorf("missing %q in output:\n%s", want, strings.Join(out, "\n"))
		}
	}
	for _, bad := range []string{"env-leak", "env-var-leak", "sibling-visible", "work-root-visible", "run-visible", "connected",
		"git-writable", "git-config-writable", "usr-writable", "shadow-readable", "nested-userns"} {
		if has(out, bad) {
			t.Errorf("sandbox allowed %q:\n%s", bad, strings.Join(out, "\n"))
		}
	}
	for _, l := range out {
		if n, ok := strings.CutPrefix(l, "procs="); ok {
			if v, _ := strconv.Atoi(n); v > 8 {
				t.Errorf("the sandbox sees %d processes: not its own PID namespace", v)
			}
		}
	}
	select {
	case <-accepted:
		t.Error("the sandbox opened a TCP connection to the host's loopback")
	case <-time.After(100 * time.Millisecond):
	}
	// The tree is the processor's again, with what CI made in it.
	st, err := os.Stat(filepath.Join(dir, "made-by-ci"))
	if err != nil {
		t.Fatal(err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; int(uid) != os.Geteuid() {
		t.Errorf("made-by-ci owned by uid %d after the run, want %d", uid, os.Geteuid())
	}
	if _, err := os.Stat(filepath.Join(dir, ".git", "hooks", "post-checkout")); err == nil {
		t.Error("a hook was planted in .git")
	}

	// With the network allowed, the same connection goes through: the check above can fail.
	res, out, err = runBwrap(t, b, Spec{Dir: dir, Network: true, Command: `bash -c 'echo x > /dev/tcp/127.0.0.1/` + port + `' && echo connected`})
	if err != nil || !has(out, "connected") {
		t.Errorf("with Network the connection failed: %+v %v %q", res, err, out)
	}
}

// A fork bomb meets the process limit: the command fails fast instead of filling the host.
func TestBwrapProcessLimit(t *testing.T) {
	b := newTestBwrap(t)
	script := `i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); echo "spawned $i"; done; echo all-spawned`
	start := time.Now()
	res, out, err := runBwrap(t, b, Spec{Dir: workTree(t), Command: script, Limits: Limits{Processes: 40}, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Passed() || has(out, "all-spawned") || has(out, "spawned 60") {
		t.Errorf("200 processes started under a limit of 40: %+v, %d lines", res, len(out))
	}
	if !has(out, "spawned 10") {
		t.Errorf("the script did not run at all: %q", out)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s: the background sleeps kept the sandbox alive", d)
	}
}

// A process allocating past the memory limit fails.
func TestBwrapMemoryLimit(t *testing.T) {
	b := newTestBwrap(t)
	script := `x=$(head -c 300000000 /dev/zero | tr '\0' a); echo "survived ${#x}"`
	res, out, err := runBwrap(t, b, Spec{Dir: workTree(t), Command: script, Limits: Limits{MemoryBytes: 64 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range out {
		if strings.HasPrefix(l, "survived 300000000") {
			t.Fatalf("300 MB held under a 64 MiB limit: %+v", res)
		}
	}
	if res.Passed() {
		t.Errorf("memory hog passed: %+v %q", res, out)
	}
	// The same script passes with room: the failure above is the limit's.
	res, out, err = runBwrap(t, b, Spec{Dir: workTree(t), Command: `x=$(head -c 3000000 /dev/zero | tr '\0' a); echo "survived ${#x}"`, Limits: Limits{MemoryBytes: 64 << 20}})
	if err != nil || !res.Passed() || !has(out, "survived 3000000") {
		t.Errorf("small allocation failed: %+v %v %q", res, err, out)
	}
}

// A busy loop is killed by the CPU time limit, long before the wall-time timeout.
func TestBwrapCPULimit(t *testing.T) {
	b := newTestBwrap(t)
	start := time.Now()
	res, _, err := runBwrap(t, b, Spec{Dir: workTree(t), Command: `while :; do :; done`, Limits: Limits{CPUTime: time.Second}, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.TimedOut || res.ExitCode != 128+int(syscall.SIGXCPU) || !strings.Contains(res.Tail, "CPU time limit") {
		t.Errorf("result %+v, want killed by SIGXCPU", res)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("CPU loop ran %s", d)
	}
}

func TestBwrapTimeout(t *testing.T) {
	b := newTestBwrap(t)
	start := time.Now()
	res, _, err := runBwrap(t, b, Spec{Dir: workTree(t), Command: `sleep 100`, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut || res.Passed() || time.Since(start) > 10*time.Second {
		t.Errorf("result %+v after %s", res, time.Since(start))
	}
}

// setsid'd and nohup'd children die with the run; the delayed marker is never written.
func TestBwrapNothingSurvivesTheRun(t *testing.T) {
	b := newTestBwrap(t)
	dir := workTree(t)
	marker := "sleep 1234.5"
	script := `setsid sleep 1234.5 >/dev/null 2>&1 &
nohup sh -c 'sleep 1; echo late > /work/late-marker' >/dev/null 2>&1 &
( setsid sh -c 'sleep 1234.5' & ) 
echo started`
	res, out, err := runBwrap(t, b, Spec{Dir: dir, Command: script})
	if err != nil || !res.Passed() || !has(out, "started") {
		t.Fatalf("%+v %v %q", res, err, out)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(dir, "late-marker")); err == nil {
		t.Error("a background process outlived the run and wrote its marker")
	}
	if pids := processesRunning(marker); len(pids) > 0 {
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		t.Errorf("processes %v survived the run", pids)
	}
}

// processesRunning lists the host processes whose command line contains s.
func processesRunning(s string) []int {
	return processes(func(dir string) bool {
		b, err := os.ReadFile(dir + "/cmdline")
		return err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), s)
	})
}

// The crash-recovery path works for the sandbox: the recorded pid is bwrap's, and killing its
// group ends the whole sandbox.
func TestBwrapKillStale(t *testing.T) {
	b := newTestBwrap(t)
	dir := workTree(t)
	pidFile := filepath.Join(dir, ".git", "ticketflow-ci.pid")
	onLine, started := closeOnLine("started")
	done := make(chan Result, 1)
	go func() {
		res, _ := b.Run(context.Background(), Spec{Dir: dir, Command: "sleep 1234.5 & echo started; wait", Timeout: time.Minute, PIDFile: pidFile}, onLine)
		done <- res
	}()
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("sandbox did not start")
	}
	if _, err := os.Stat(pidFile); err != nil {
		t.Fatalf("no pid file while the sandbox runs: %v", err)
	}
	if killed, err := KillStale(pidFile, dir); !killed || err != nil {
		t.Fatalf("KillStale: %v %v", killed, err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("sandbox survived KillStale")
	}
	time.Sleep(100 * time.Millisecond)
	if pids := processesRunning("sleep 1234.5"); len(pids) > 0 {
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		t.Errorf("sandboxed processes %v survived", pids)
	}
}
