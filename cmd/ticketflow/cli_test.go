package main

// Tests of the client commands: the ticketflow binary (built by TestMain) against a real
// `ticketflow dev` child process, plus table tests of the pure formatting functions.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/ticketflow/ticketflow/cmd/ticketflow/client"
	"github.com/ticketflow/ticketflow/libs/workflow"
)

type cliResult struct {
	stdout, stderr string
	code           int
}

// cli runs the binary with env (on top of a clean config dir) and waits at most timeout.
func cli(t *testing.T, env []string, timeout time.Duration, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ticketflow %v did not end within %s (stdout %q, stderr %q)", args, timeout, out.String(), errb.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ticketflow %v: %v", args, err)
	}
	return cliResult{out.String(), errb.String(), code}
}

// commandPaths lists every command of the tree ("tickets list", ...).
func commandPaths(c *cobra.Command, prefix []string) [][]string {
	var out [][]string
	for _, sub := range c.Commands() {
		p := append(append([]string{}, prefix...), sub.Name())
		out = append(out, p)
		out = append(out, commandPaths(sub, p)...)
	}
	return out
}

func TestHelpOnEveryCommandStartsNothing(t *testing.T) {
	// An unreachable server and no token: a command that did anything would fail or hang.
	env := []string{"XDG_CONFIG_HOME=" + t.TempDir(), "TICKETFLOW_URL=http://127.0.0.1:1", "TICKETFLOW_TOKEN=", "DATABASE_URL=postgres://nobody@127.0.0.1:1/x"}
	paths := append(commandPaths(newRootCmd(), nil), []string{})
	for _, p := range paths {
		for _, h := range []string{"--help", "-h"} {
			args := append(append([]string{}, p...), h)
			start := time.Now()
			r := cli(t, env, 20*time.Second, args...)
			if r.code != 0 {
				t.Errorf("ticketflow %v: exit %d, stderr %q", args, r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, "Usage:") {
				t.Errorf("ticketflow %v: no usage in %q", args, r.stdout)
			}
			if strings.Contains(r.stdout+r.stderr, "listening") || time.Since(start) > 10*time.Second {
				t.Errorf("ticketflow %v seems to have started something: %q %q", args, r.stdout, r.stderr)
			}
		}
	}
}

func TestVersionAndCompletion(t *testing.T) {
	if r := cli(t, nil, 10*time.Second, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "ticketflow ") {
		t.Fatalf("version: %+v", r)
	}
	if r := cli(t, nil, 10*time.Second, "completion", "bash"); r.code != 0 || !strings.Contains(r.stdout, "ticketflow") {
		t.Fatalf("completion bash: exit %d %q", r.code, r.stderr)
	}
}

func TestLoginStoresTokenWithMode0600(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/me" || r.Header.Get("Authorization") != "Bearer tok-123" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"success":false,"error":{"code":"unauthenticated","message":"invalid token"}}`)
			return
		}
		fmt.Fprint(w, `{"sub":"alice","role":"user"}`)
	}))
	defer srv.Close()
	home := t.TempDir()
	env := []string{"XDG_CONFIG_HOME=" + home, "TICKETFLOW_URL=", "TICKETFLOW_TOKEN="}

	r := cli(t, env, 10*time.Second, "login", "--url", srv.URL, "--token", "wrong")
	if r.code != 1 || !strings.Contains(r.stderr, "ticketflow: checking the token against") || !strings.Contains(r.stderr, "invalid token (401 unauthenticated)") {
		t.Fatalf("login with a bad token: %+v", r)
	}
	// The token from stdin.
	cmd := exec.Command(binary, "login", "--url", srv.URL)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader("tok-123\n")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "as alice (user)") {
		t.Fatalf("login: %v %s", err, out)
	}
	p := filepath.Join(home, "ticketflow", "config.json")
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("config mode %v, want 0600", st.Mode().Perm())
	}
	if dst, _ := os.Stat(filepath.Dir(p)); dst.Mode().Perm() != 0o700 {
		t.Fatalf("config dir mode %v, want 0700", dst.Mode().Perm())
	}
	var c cliConfig
	raw, _ := os.ReadFile(p)
	if err := json.Unmarshal(raw, &c); err != nil || c.URL != srv.URL || c.Token != "tok-123" {
		t.Fatalf("config = %s (%v)", raw, err)
	}
	// TICKETFLOW_TOKEN overrides the stored token.
	r = cli(t, append(env, "TICKETFLOW_TOKEN=other"), 10*time.Second, "tickets", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "(401 unauthenticated)") {
		t.Fatalf("override: %+v", r)
	}
}

// cutProxy forwards TCP to target and, once, cuts the first WebSocket connection after it
// has carried cutAfter bytes from the server.
type cutProxy struct {
	ln       net.Listener
	target   string
	cutAfter int64
	cut      atomic.Bool
	wg       sync.WaitGroup
}

func newCutProxy(t *testing.T, target string, cutAfter int64) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, cutAfter: cutAfter}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() { defer p.wg.Done(); p.handle(c) }()
	}
}

func (p *cutProxy) handle(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	first := make([]byte, 4096)
	n, err := c.Read(first)
	if err != nil {
		return
	}
	if _, err := up.Write(first[:n]); err != nil {
		return
	}
	ws := bytes.HasPrefix(first[:n], []byte("GET /ws/"))
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	if !ws || p.cut.Load() {
		_, _ = io.Copy(c, up)
		return
	}
	var sent int64
	buf := make([]byte, 256)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
			sent += int64(n)
			if sent >= p.cutAfter && p.cut.CompareAndSwap(false, true) {
				return // drop both sides: no close frame
			}
		}
		if err != nil {
			return
		}
	}
}

func TestCLIAgainstDev(t *testing.T) {
	s := startStack(t, "TICKETFLOW_SIM_STEP_DELAY=150ms", "TICKETFLOW_SIM_LOGS_PER_STEP=3")
	env := []string{"XDG_CONFIG_HOME=" + t.TempDir(), "TICKETFLOW_URL=http://" + s.http, "TICKETFLOW_TOKEN=" + s.token}
	create := func(t *testing.T, args ...string) string {
		t.Helper()
		r := cli(t, env, 30*time.Second, append([]string{"tickets", "create", "--output", "json"}, args...)...)
		var tk client.Ticket
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &tk) != nil || tk.ID == "" {
			t.Fatalf("tickets create: %+v", r)
		}
		return tk.ID
	}

	t.Run("create, list, show, errors", func(t *testing.T) {
		id := create(t, "--title", "CLI ticket", "--description", "from the CLI")
		r := cli(t, env, 30*time.Second, "tickets", "list", "--output", "json")
		var ts []client.Ticket
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ts) != nil {
			t.Fatalf("list: %+v", r)
		}
		found := false
		for _, tk := range ts {
			found = found || tk.ID == id
		}
		if !found {
			t.Fatalf("list lacks %s: %s", id, r.stdout)
		}
		if r := cli(t, env, 30*time.Second, "tickets", "list"); r.code != 0 || !strings.Contains(r.stdout, id) || !strings.HasPrefix(r.stdout, "ID") {
			t.Fatalf("list text: %+v", r)
		}
		r = cli(t, env, 30*time.Second, "tickets", "show", id, "-o", "json")
		var shown map[string]any
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &shown) != nil || shown["id"] != id || shown["title"] != "CLI ticket" {
			t.Fatalf("show: %+v", r)
		}
		r = cli(t, env, 30*time.Second, "tickets", "show", "no-such-ticket")
		if r.code != 1 || !strings.Contains(r.stderr, "ticketflow: ") || !strings.Contains(r.stderr, "(404 not_found)") {
			t.Fatalf("show unknown: %+v", r)
		}
	})

	t.Run("start --watch to COMPLETED exits 0, logs, events, approve", func(t *testing.T) {
		id := create(t, "--title", "green")
		r := cli(t, env, 90*time.Second, "run", "start", id, "--watch")
		if r.code != 0 {
			t.Fatalf("watch: %+v", r)
		}
		if strings.Contains(r.stdout, "\x1b[") {
			t.Fatalf("escape codes in non-terminal output: %q", r.stdout)
		}
		for _, want := range []string{"status PENDING 0%", "status IN_PROGRESS 5% check_iterations", "status IN_PROGRESS 95% handle_ci_result", "ci    CI passed (exit 0", "status COMPLETED 100% await_validation"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("watch output lacks %q:\n%s", want, r.stdout)
			}
		}
		// Golden: the status lines of a green run, in order.
		var statusLines []string
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.HasPrefix(l, "status ") {
				statusLines = append(statusLines, l)
			}
		}
		wantStatus := []string{"status PENDING 0%: " + workflow.MessagePending}
		for _, st := range workflow.Steps[:7] {
			wantStatus = append(wantStatus, fmt.Sprintf("status IN_PROGRESS %d%% %s: %s", st.Progress, st.Name, st.Message))
		}
		wantStatus = append(wantStatus, "status COMPLETED 100% await_validation: "+workflow.MessageCompleted)
		if strings.Join(statusLines, "\n") != strings.Join(wantStatus, "\n") {
			t.Errorf("status lines:\n%s\nwant:\n%s", strings.Join(statusLines, "\n"), strings.Join(wantStatus, "\n"))
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if last := lines[len(lines)-1]; !strings.HasPrefix(last, "status COMPLETED 100%") {
			t.Errorf("last line %q", last)
		}
		// A second watch of the finished run replays it and exits 0 at once.
		if r := cli(t, env, 30*time.Second, "run", "watch", id, "--output", "json"); r.code != 0 || !strings.Contains(r.stdout, `"status":"COMPLETED"`) {
			t.Fatalf("watch json: %+v", r)
		} else {
			for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
				var m client.Message
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatalf("watch json line %q: %v", l, err)
				}
			}
		}
		logs := cli(t, env, 30*time.Second, "logs", id)
		if logs.code != 0 || strings.Count(logs.stdout, "\n") < 8 {
			t.Fatalf("logs: %+v", logs)
		}
		// --follow on the finished run replays its log over the WebSocket and stops at its end.
		if f := cli(t, env, 30*time.Second, "logs", id, "--follow"); f.code != 0 || f.stdout != logs.stdout {
			t.Fatalf("logs --follow differs from logs: %+v\n---\n%s", f, logs.stdout)
		}
		var logMsgs []client.Message
		if r := cli(t, env, 30*time.Second, "logs", id, "-o", "json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &logMsgs) != nil || len(logMsgs) == 0 {
			t.Fatalf("logs json: %+v", r)
		}
		r = cli(t, env, 30*time.Second, "events", id, "--ndjson")
		if r.code != 0 {
			t.Fatalf("events --ndjson: %+v", r)
		}
		for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var env client.Envelope
			if err := json.Unmarshal([]byte(l), &env); err != nil || env.TicketID != id {
				t.Fatalf("ndjson line %q: %v", l, err)
			}
		}
		var items []client.EventItem
		if r := cli(t, env, 30*time.Second, "events", id, "-o", "json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &items) != nil || len(items) == 0 {
			t.Fatalf("events json: %+v", r)
		}
		if r := cli(t, env, 30*time.Second, "approve", id); r.code != 0 {
			t.Fatalf("approve: %+v", r)
		}
		if r := cli(t, env, 30*time.Second, "tickets", "show", id, "-o", "json"); !strings.Contains(r.stdout, `"status": "VALIDATED"`) {
			t.Fatalf("after approve: %+v", r)
		}
	})

	t.Run("request-changes starts a new run", func(t *testing.T) {
		id := create(t, "--title", "changes")
		if r := cli(t, env, 90*time.Second, "run", "start", id, "--watch"); r.code != 0 {
			t.Fatalf("watch: %+v", r)
		}
		if r := cli(t, env, 30*time.Second, "request-changes", id); r.code == 0 {
			t.Fatalf("request-changes without -m succeeded: %+v", r)
		}
		if r := cli(t, env, 30*time.Second, "request-changes", id, "-m", "rename it", "-o", "json"); r.code != 0 || !strings.Contains(r.stdout, `"status": "PENDING"`) {
			t.Fatalf("request-changes: %+v", r)
		}
		if r := cli(t, env, 90*time.Second, "run", "watch", id); r.code != 0 {
			t.Fatalf("watch of the new run: %+v", r)
		}
	})

	t.Run("failing run exits 1", func(t *testing.T) {
		id := create(t, "--title", "red", "--simulate-failure", "always")
		r := cli(t, env, 120*time.Second, "run", "start", id, "--watch")
		if r.code != 1 || !strings.Contains(r.stdout, "status FAILED") || !strings.Contains(r.stdout, "CI failed") {
			t.Fatalf("failing watch: %+v", r)
		}
	})

	t.Run("cancelled run exits 2", func(t *testing.T) {
		id := create(t, "--title", "to cancel")
		cmd := exec.Command(binary, "run", "start", id, "--watch")
		cmd.Env = append(os.Environ(), env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool {
			var tk client.Ticket
			s.do("GET", "/api/tickets/"+id, nil, &tk)
			return tk.Status == "IN_PROGRESS"
		})
		if r := cli(t, env, 30*time.Second, "cancel", id); r.code != 0 {
			t.Fatalf("cancel: %+v", r)
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out.String(), "status CANCELLED") {
			t.Fatalf("cancelled watch: %v\n%s", err, out.String())
		}
	})

	t.Run("watch survives a dropped connection", func(t *testing.T) {
		p := newCutProxy(t, s.http, 3000)
		penv := append(append([]string{}, env...), "TICKETFLOW_URL=http://"+p.ln.Addr().String())
		id := create(t, "--title", "dropped")
		r := cli(t, penv, 90*time.Second, "run", "start", id, "--watch")
		if r.code != 0 {
			t.Fatalf("watch: %+v", r)
		}
		if !p.cut.Load() || !strings.Contains(r.stderr, "connection lost") {
			t.Fatalf("the connection was not cut (cut=%v): %+v", p.cut.Load(), r)
		}
		var got []string
		for _, l := range strings.Split(r.stdout, "\n") {
			if rest, ok := strings.CutPrefix(l, "log   "); ok {
				got = append(got, rest)
			}
		}
		want := strings.Split(strings.TrimSpace(cli(t, env, 30*time.Second, "logs", id).stdout), "\n")
		if len(want) < 10 || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("log lines through the cut connection (%d) differ from the run's log (%d):\n%s\n---\n%s", len(got), len(want), strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if n := strings.Count(r.stdout, "status COMPLETED"); n != 1 {
			t.Fatalf("COMPLETED %d times", n)
		}
	})

	t.Run("terminal view in tmux", func(t *testing.T) {
		if _, err := exec.LookPath("tmux"); err != nil {
			t.Skip("tmux is not installed")
		}
		id := create(t, "--title", "tmux")
		session := fmt.Sprintf("tf-cli-%d", time.Now().UnixNano())
		script := filepath.Join(t.TempDir(), "run.sh")
		var sb strings.Builder
		sb.WriteString("#!/bin/sh\n")
		for _, e := range env {
			fmt.Fprintf(&sb, "export '%s'\n", e)
		}
		fmt.Fprintf(&sb, "'%s' run start %s --watch\necho \"EXIT=$?\"\nsleep 120\n", binary, id)
		if err := os.WriteFile(script, []byte(sb.String()), 0o700); err != nil {
			t.Fatal(err)
		}
		tmux := func(args ...string) string {
			out, err := exec.Command("tmux", append([]string{"-u", "-L", session}, args...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("tmux %v: %v %s", args, err, out)
			}
			return string(out)
		}
		tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", "env", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", script)
		t.Cleanup(func() { _ = exec.Command("tmux", "-L", session, "kill-server").Run() })
		var screen string
		deadline := time.Now().Add(90 * time.Second)
		for time.Now().Before(deadline) {
			screen = tmux("capture-pane", "-p", "-t", session)
			if strings.Contains(screen, "EXIT=") {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("screen:\n%s", screen)
		if !strings.Contains(screen, "EXIT=0") {
			t.Fatalf("no EXIT=0 on screen:\n%s", screen)
		}
		if n := strings.Count(screen, "✓"); n != 8 {
			t.Errorf("%d ✓ marks, want 8:\n%s", n, screen)
		}
		if !strings.Contains(screen, progressBar(100, 40)) || !strings.Contains(screen, "COMPLETED") {
			t.Errorf("no full progress bar / COMPLETED:\n%s", screen)
		}
	})
}
