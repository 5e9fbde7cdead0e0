package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/gittest"
	"github.com/ticketflow/ticketflow/libs/sandboxtest"
	"github.com/ticketflow/ticketflow/services/processor/ci"
)

// TestHostileTenant runs the processor binary with the real executor and the default (bwrap)
// sandbox, and a repository whose CI script tries every escape a hostile user tried on the
// unsandboxed processor: the environment of every visible process and its own, the data dir's
// JWT secret, another tenant's clone, TCP to PostgreSQL and to the broker, hooks and config
// planted in its own .git for the processor's next git commands, and processes meant to
// outlive the run. What it finds is printed base64-encoded and reversed, so the redactor
// cannot hide a leak from this test. The test decodes the run's log and asserts that nothing
// leaked, no connection opened, no hook ran on the ticket's next run, nothing survived, and
// that both runs still completed.
func TestHostileTenant(t *testing.T) {
	root := sandboxtest.Dir(t)
	workDir := filepath.Join(root, "work")
	if err := os.Mkdir(workDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ci.NewBwrap(context.Background(), ci.BwrapConfig{}, workDir); err != nil {
		t.Skipf("bwrap cannot run on this machine, hostile-tenant suite skipped (install bubblewrap; user namespaces must be allowed): %v", err)
	}
	const (
		jwtSecret     = "hostile-TEST-jwt-secret-0123456789abcdef"
		fileJWTSecret = "hostile-TEST-datadir-jwt-secret-fedcba9876"
		gitToken      = "ghp_hostileTESTtoken_5a6b7c"
		openaiKey     = "sk-hostile-TEST-openai-key-42"
		dbPassword    = "hostile-TEST-db-password-31415"
		tenantPrivate = "TENANT-A-PRIVATE-CONTENT-2718"
	)
	dataDir := filepath.Join(root, "data")
	if err := os.Mkdir(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "jwt-secret"), []byte(fileJWTSecret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostMarkers := filepath.Join(root, "markers") // where a hook or a survivor would write on the host
	if err := os.Mkdir(hostMarkers, 0o777); err != nil {
		t.Fatal(err)
	}
	hookMarker, survivorMarker := filepath.Join(hostMarkers, "hook-ran"), filepath.Join(hostMarkers, "survivor")

	e := newEnv(t)
	dsn := e.dsn
	if strings.HasPrefix(dsn, "postgres://postgres@") { // trust auth ignores it: a secret to leak
		dsn = strings.Replace(dsn, "postgres://postgres@", "postgres://postgres:"+dbPassword+"@", 1)
	}
	brokerPort := e.kafka.Brokers[0][strings.LastIndex(e.kafka.Brokers[0], ":")+1:]

	tenantA := gittest.OriginAt(t, filepath.Join(root, "origins", "tenant-a.git"), map[string]string{"private.txt": tenantPrivate + "\n", "ci.sh": "echo fine\n"})
	script := fmt.Sprintf(`#!/bin/sh
# base64 in 3000-character lines (each decodable alone), each line reversed
leak() { base64 -w 3000 | rev | sed "s/^/LEAK:$1:/"; }
cat /proc/[0-9]*/environ 2>/dev/null | tr '\0' '\n' | leak proc-environ
env | leak own-env
{ cat %[1]s/jwt-secret; ls -la %[1]s; } 2>&1 | leak data-dir
{ cat %[2]s/*/private.txt; ls -la %[2]s; } 2>&1 | leak work-root
find / \( -path /proc -o -path /usr -o -path /sys \) -prune -o -name private.txt -print 2>/dev/null | xargs cat 2>/dev/null | leak find-private
ls -la .. 2>&1 | leak parent-dir
cat /proc/1/cmdline /proc/self/mountinfo 2>&1 | leak proc-info
for target in pg:5432 broker:%[3]s; do
  if bash -c "exec 3<>/dev/tcp/127.0.0.1/${target#*:}" 2>/dev/null; then echo "CONN:${target%%:*}:open"; else echo "CONN:${target%%:*}:refused"; fi
done
(printf '#!/bin/sh\ntouch %[4]s\n' > .git/hooks/post-checkout && chmod +x .git/hooks/post-checkout) 2>/dev/null && echo PLANT:hook:ok || echo PLANT:hook:refused
(printf '[core]\n\tfsmonitor = touch %[4]s\n\thooksPath = /work/.hooks\n' >> .git/config) 2>/dev/null && echo PLANT:config:ok || echo PLANT:config:refused
mkdir -p .hooks && printf '#!/bin/sh\ntouch %[4]s\n' > .hooks/post-checkout && chmod +x .hooks/post-checkout
setsid sleep 7777.5 >/dev/null 2>&1 &
nohup sh -c 'while true; do sleep 1; touch %[5]s /work/survivor-in-tree 2>/dev/null; done' >/dev/null 2>&1 &
( setsid sh -c 'sleep 2; touch %[5]s' >/dev/null 2>&1 & )
echo hostile-script-done
exit 0
`, dataDir, workDir, brokerPort, hookMarker, survivorMarker)
	hostile := gittest.OriginAt(t, filepath.Join(root, "origins", "hostile.git"), map[string]string{"ci.sh": script})

	proc := e.processor(
		"TICKETFLOW_EXECUTOR=real",
		"TICKETFLOW_WORK_DIR="+workDir,
		"TICKETFLOW_DATA_DIR="+dataDir,
		"TICKETFLOW_JWT_SECRET="+jwtSecret,
		"DATABASE_URL="+dsn,
		"TICKETFLOW_FILE_REPO_ROOT="+filepath.Join(root, "origins"),
		"TICKETFLOW_GIT_TOKEN="+gitToken,
		"TICKETFLOW_LLM_PROVIDER=demo",
		"OPENAI_API_KEY="+openaiKey,
		"TICKETFLOW_CI_TIMEOUT=60s",
	)
	proc.start()

	// Tenant A's clone is in the work dir before the hostile run.
	aTicket, aRun := uuid.NewString(), uuid.NewString()
	e.append(events.MustNew(aTicket, "", "user:alice", &events.TicketCreatedData{Title: "a", Description: "tenant a", RepositoryURL: tenantA,
		BaseBranch: "main", CICommand: "sh ci.sh", Owner: "alice"}),
		events.MustNew(aTicket, aRun, "user:alice", &events.ProcessingRequestedData{RequestedBy: "alice", Reason: "start"}))
	waitTerminal(t, e, aRun, events.RunCompleted)

	ticket, run1, run2 := uuid.NewString(), uuid.NewString(), uuid.NewString()
	e.append(events.MustNew(ticket, "", "user:mallory", &events.TicketCreatedData{Title: "hostile", Description: "escape", RepositoryURL: hostile,
		BaseBranch: "main", CICommand: "sh ci.sh", Owner: "mallory"}),
		events.MustNew(ticket, run1, "user:mallory", &events.ProcessingRequestedData{RequestedBy: "mallory", Reason: "start"}))
	waitTerminal(t, e, run1, events.RunCompleted)
	time.Sleep(3 * time.Second) // the survivors' delay
	// The second run's git commands (fetch, checkout, reset, commit) would run planted hooks.
	e.append(events.MustNew(ticket, run1, "user:mallory", &events.ChangesRequestedData{RequestedBy: "mallory", Comment: "again", NextRunID: run2}),
		events.MustNew(ticket, run2, "user:mallory", &events.ProcessingRequestedData{RequestedBy: "mallory", Reason: "changes_requested"}))
	waitTerminal(t, e, run2, events.RunCompleted)
	proc.stop(syscall.SIGTERM)

	secrets := map[string]string{"JWT secret": jwtSecret, "data dir JWT secret": fileJWTSecret, "git token": gitToken,
		"OpenAI key": openaiKey, "tenant A's file": tenantPrivate, "database password": dbPassword, "broker address": e.kafka.Brokers[0]}
	if !strings.Contains(dsn, dbPassword) {
		delete(secrets, "database password")
	}
	for _, runID := range []string{run1, run2} {
		leaks, plain := decodeCILog(t, e, runID)
		if !strings.Contains(leaks["own-env"], "TICKETFLOW_TICKET_ID="+ticket) || !containsLine(plain, "hostile-script-done") {
			t.Fatalf("run %s: the script's output did not decode (own-env %q): the scan would prove nothing", runID, leaks["own-env"])
		}
		for what, text := range leaks {
			for name, secret := range secrets {
				if strings.Contains(text, secret) {
					t.Errorf("run %s: %s leaked through %s", runID, name, what)
				}
			}
		}
		for _, l := range plain {
			for name, secret := range secrets {
				if strings.Contains(l, secret) {
					t.Errorf("run %s: %s in a log line", runID, name)
				}
			}
		}
		for _, want := range []string{"CONN:pg:refused", "CONN:broker:refused", "PLANT:hook:refused", "PLANT:config:refused"} {
			if !containsLine(plain, want) {
				t.Errorf("run %s: want %q; CI output:\n%s", runID, want, strings.Join(plain, "\n"))
			}
		}
	}
	for _, f := range []string{hookMarker, survivorMarker} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s exists: a planted hook ran or a CI process survived", f)
		}
	}
	if matches, _ := filepath.Glob(filepath.Join(workDir, "*", "survivor-in-tree")); len(matches) > 0 {
		t.Errorf("a CI process survived its run and wrote %v", matches)
	}
	for _, p := range hostProcesses("7777.5", survivorMarker) {
		_ = syscall.Kill(p, syscall.SIGKILL)
		t.Errorf("CI process %d survived", p)
	}
}

// decodeCILog returns the run's CI output lines and the decoded LEAK:<name>: payloads (each
// line reversed base64 of a piece, in order).
func decodeCILog(t *testing.T, e *env, runID string) (map[string]string, []string) {
	t.Helper()
	leaks := map[string]string{}
	var plain []string
	for _, ev := range e.readAll() {
		if ev.RunID != runID || ev.Type != events.LogEmitted {
			continue
		}
		p, err := ev.Decode()
		if err != nil {
			t.Fatal(err)
		}
		l := p.(*events.LogEmittedData)
		if l.Stream == "" {
			plain = append(plain, l.Message) // the executor's own lines are scanned too
			continue
		}
		plain = append(plain, l.Message)
		rest, ok := strings.CutPrefix(l.Message, "LEAK:")
		if !ok {
			continue
		}
		name, encoded, _ := strings.Cut(rest, ":")
		r := []rune(encoded)
		for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
			r[i], r[j] = r[j], r[i]
		}
		decoded, err := base64.StdEncoding.DecodeString(string(r))
		if err != nil {
			t.Errorf("undecodable %s payload %q: %v", name, encoded, err)
		}
		leaks[name] += string(decoded)
	}
	return leaks, plain
}

func containsLine(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

func waitTerminal(t *testing.T, e *env, runID string, want events.Type) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		for _, ev := range e.readAll() {
			if ev.RunID == runID && events.Terminal(ev.Type) {
				if ev.Type != want {
					t.Fatalf("run %s ended %s (%s), want %s", runID, ev.Type, ev.Data, want)
				}
				return
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("run %s did not end", runID)
}

// hostProcesses lists host processes whose command line contains any of needles.
func hostProcesses(needles ...string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		for _, n := range needles {
			if strings.Contains(cmdline, n) && !strings.Contains(cmdline, "go test") && !strings.Contains(cmdline, ".test") {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
