package main

// End-to-end tests: the real `ticketflow dev` binary as a child process, the embedded Kafka
// broker over TCP, a real PostgreSQL database, HTTP and WebSocket clients.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/forge"
	"github.com/ticketflow/ticketflow/libs/forge/forgetest"
	"github.com/ticketflow/ticketflow/libs/gittest"
	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
	"github.com/ticketflow/ticketflow/libs/proctest"
	"github.com/ticketflow/ticketflow/libs/sandboxtest"
)

var binary string

func TestMain(m *testing.M) { proctest.Main(m, &binary, "ticketflow", ".") }

const testSecret = "e2e-secret-e2e-secret-e2e-secret-0123"

// stack is one running `ticketflow dev`.
type stack struct {
	t       *testing.T
	proc    *proctest.Process
	http    string
	kafka   string
	dataDir string
	token   string
}

// startStack runs `ticketflow dev` with its own ports, data dir and database.
func startStack(t *testing.T, extraEnv ...string) *stack {
	t.Helper()
	s := &stack{t: t, http: proctest.FreeAddr(t), kafka: proctest.FreeAddr(t), dataDir: t.TempDir()}
	env := append(os.Environ(),
		"TICKETFLOW_HTTP_ADDR="+s.http,
		"TICKETFLOW_EMBEDDED_KAFKA_ADDR="+s.kafka,
		"TICKETFLOW_DATA_DIR="+s.dataDir,
		"DATABASE_URL="+pgtest.NewDatabase(t),
		"TICKETFLOW_JWT_SECRET="+testSecret,
		"TICKETFLOW_EXECUTOR=simulated",
		"TICKETFLOW_SIM_STEP_DELAY=40ms",
		"TICKETFLOW_WEB_DIR="+t.TempDir(),
		"KAFKA_BROKERS=",
		"KAFKA_PARTITIONS=4",
		"TICKETFLOW_LOG_LEVEL="+os.Getenv("E2E_LOG_LEVEL"),
	)
	s.proc = &proctest.Process{Name: "ticketflow dev", Path: binary, Args: []string{"dev"}, Env: append(env, extraEnv...)}
	v, _ := auth.NewVerifier(testSecret)
	s.token, _ = v.Issue("alice", auth.RoleUser, time.Hour)
	t.Cleanup(func() {
		s.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("ticketflow dev output:\n%s", s.proc.Output())
		}
	})
	s.start()
	return s
}

// start runs `ticketflow dev` and waits until it is ready.
func (s *stack) start() {
	s.t.Helper()
	s.proc.Start(s.t, "http://"+s.http+"/readyz")
}

// stop sends sig and waits for the process to end (killed after 30 s, failing the test).
func (s *stack) stop(sig syscall.Signal) {
	if !s.proc.Stop(sig, 30*time.Second) {
		s.t.Errorf("ticketflow dev did not stop on %v", sig)
	}
}

func (s *stack) do(method, path string, body any, out any) int {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+s.http+path, r)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

func (s *stack) createTicket(fields map[string]any) string {
	s.t.Helper()
	var tk struct{ ID string }
	if code := s.do("POST", "/api/tickets", fields, &tk); code != 201 || tk.ID == "" {
		s.t.Fatalf("create ticket: %d %+v", code, tk)
	}
	return tk.ID
}

// startRun creates a ticket with fields, connects to its socket (closed when the test ends)
// and starts processing it.
func (s *stack) startRun(ctx context.Context, fields map[string]any) (string, *websocket.Conn) {
	s.t.Helper()
	id := s.createTicket(fields)
	c := s.dial(ctx, id, "")
	s.t.Cleanup(func() { c.CloseNow() })
	s.do("POST", "/api/tickets/processing/start", map[string]string{"ticket_id": id}, nil)
	return id, c
}

type wsMessage struct {
	Type     string `json:"type"`
	TicketID string `json:"ticket_id"`
	Status   string `json:"status"`
	Step     string `json:"step"`
	Progress *int   `json:"progress"`
	Message  string `json:"message"`
	Error    string `json:"error"`
	Level    string `json:"level"`
	Cursor   string `json:"cursor"`
	EventID  string `json:"event_id"`
	RunID    string `json:"run_id"`
}

func (s *stack) dial(ctx context.Context, ticketID, query string) *websocket.Conn {
	s.t.Helper()
	url := fmt.Sprintf("ws://%s/ws/tickets/%s?access_token=%s%s", s.http, ticketID, s.token, query)
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		s.t.Fatalf("dial %s: %v", url, err)
	}
	c.SetReadLimit(1 << 20)
	return c
}

// readUntil reads messages until stop returns true.
func readUntil(t *testing.T, ctx context.Context, c *websocket.Conn, stop func(wsMessage) bool) []wsMessage {
	t.Helper()
	var got []wsMessage
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read after %d messages: %v (last: %+v)", len(got), err, tail(got))
		}
		var m wsMessage
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("message %q: %v", data, err)
		}
		got = append(got, m)
		if stop(m) {
			return got
		}
	}
}

func tail(ms []wsMessage) []wsMessage {
	if len(ms) > 5 {
		return ms[len(ms)-5:]
	}
	return ms
}

func terminal(m wsMessage) bool {
	return m.Type == "status_update" && (m.Status == "COMPLETED" || m.Status == "FAILED" || m.Status == "CANCELLED")
}

type statusStep struct {
	Status   string
	Step     string
	Progress int
}

func statusUpdates(ms []wsMessage) []statusStep {
	var out []statusStep
	for _, m := range ms {
		if m.Type == "status_update" {
			p := -1
			if m.Progress != nil {
				p = *m.Progress
			}
			out = append(out, statusStep{m.Status, m.Step, p})
		}
	}
	return out
}

var briefSequence = []statusStep{
	{"PENDING", "", 0},
	{"IN_PROGRESS", "check_iterations", 5},
	{"IN_PROGRESS", "prepare_repository", 20},
	{"IN_PROGRESS", "load_conversation", 30},
	{"IN_PROGRESS", "call_llm", 50},
	{"IN_PROGRESS", "commit_changes", 70},
	{"IN_PROGRESS", "run_ci", 85},
	{"IN_PROGRESS", "handle_ci_result", 95},
	{"COMPLETED", "await_validation", 100},
}

func TestBriefSequenceOverWebSocket(t *testing.T) {
	s := startStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id := s.createTicket(map[string]any{"title": "Add a health endpoint", "description": "e2e"})

	c := s.dial(ctx, id, "")
	defer c.CloseNow()
	first := readUntil(t, ctx, c, func(wsMessage) bool { return true })
	if first[0].Type != "connected" || first[0].TicketID != id {
		t.Fatalf("first message = %+v, want connected for %s", first[0], id)
	}

	var start map[string]any
	if code := s.do("POST", "/api/tickets/processing/start", map[string]string{"ticket_id": id}, &start); code != 202 {
		t.Fatalf("start: %d %v", code, start)
	}
	if start["success"] != true || start["status"] != "PENDING" || start["websocket_url"] != "/ws/tickets/"+id {
		t.Fatalf("start response = %v", start)
	}
	// A second start while the run is active is refused.
	if code := s.do("POST", "/api/tickets/processing/start", map[string]string{"ticket_id": id}, nil); code != 409 {
		t.Fatalf("second start: %d, want 409", code)
	}
	msgs := readUntil(t, ctx, c, terminal)
	assertSequence(t, statusUpdates(msgs), briefSequence)
	logs := 0
	for i, m := range msgs {
		if m.Type == "log" {
			logs++
			if m.Level == "" || m.Message == "" {
				t.Errorf("log message without level or text: %+v", m)
			}
		}
		if m.Type == "replay_complete" {
			continue // a marker, not an event
		}
		if m.Cursor == "" || m.EventID == "" || m.RunID != start["run_id"] {
			t.Errorf("message %d lacks cursor/event_id/run_id: %+v", i, m)
		}
	}
	if logs < 7 {
		t.Errorf("only %d log messages between status updates", logs)
	}

	// The projection agrees, and the audit trail holds every event the socket carried.
	var tk struct {
		Status   string
		Progress int
		Step     string
	}
	waitFor(t, func() bool { s.do("GET", "/api/tickets/"+id, nil, &tk); return tk.Status == "COMPLETED" })
	if tk.Progress != 100 || tk.Step != "await_validation" {
		t.Fatalf("ticket = %+v", tk)
	}
	var trail struct {
		Events []struct {
			Event struct{ ID string }
		}
	}
	s.do("GET", "/api/tickets/"+id+"/events", nil, &trail)
	inTrail := map[string]bool{}
	for _, e := range trail.Events {
		inTrail[e.Event.ID] = true
	}
	for _, m := range msgs {
		if m.Type != "replay_complete" && !inTrail[m.EventID] {
			t.Errorf("socket event %s (%s) missing from the audit trail", m.EventID, m.Type)
		}
	}
	// Approve → VALIDATED.
	var v map[string]any
	if code := s.do("POST", "/api/tickets/"+id+"/validation", map[string]string{"decision": "approve"}, &v); code != 202 {
		t.Fatalf("approve: %d %v", code, v)
	}
	readUntil(t, ctx, c, func(m wsMessage) bool { return m.Type == "status_update" && m.Status == "VALIDATED" })
}

func assertSequence(t *testing.T, got, want []statusStep) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("status updates:\n got %v\nwant %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("status update %d = %v, want %v\n got %v", i, got[i], want[i], got)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	proctest.Eventually(t, 20*time.Second, 50*time.Millisecond, "condition", cond)
}

func TestFailedAfterMaxIterationsThenCancelled(t *testing.T) {
	s := startStack(t, "MAX_ITERATIONS=2")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, c := s.startRun(ctx, map[string]any{"title": "CI always red", "simulate_failure": "always"})
	msgs := readUntil(t, ctx, c, terminal)
	last := msgs[len(msgs)-1]
	if last.Status != "FAILED" || last.Error == "" {
		t.Fatalf("terminal = %+v, want FAILED with error", last)
	}
	// CI failed → back to call_llm: two iterations of call_llm..handle_ci_result.
	llm := 0
	for _, u := range statusUpdates(msgs) {
		if u.Step == "call_llm" {
			llm++
		}
	}
	if llm != 2 {
		t.Fatalf("call_llm ran %d times, want 2 (MAX_ITERATIONS)", llm)
	}
	// The iteration budget is spent: the next run is CANCELLED by check_iterations.
	waitFor(t, func() bool {
		var tk struct{ Status string }
		s.do("GET", "/api/tickets/"+id, nil, &tk)
		return tk.Status == "FAILED"
	})
	if code := s.do("POST", "/api/tickets/processing/start", map[string]string{"ticket_id": id}, nil); code != 202 {
		t.Fatalf("restart: %d", code)
	}
	msgs = readUntil(t, ctx, c, terminal)
	last = msgs[len(msgs)-1]
	if last.Status != "CANCELLED" || last.Step != "check_iterations" || last.Error == "" {
		t.Fatalf("terminal = %+v, want CANCELLED at check_iterations with a reason", last)
	}
}

func TestOnceFailingCILoopsBackAndCompletes(t *testing.T) {
	s := startStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, c := s.startRun(ctx, map[string]any{"title": "flaky", "simulate_failure": "once"})
	msgs := readUntil(t, ctx, c, terminal)
	got := statusUpdates(msgs)
	if got[len(got)-1].Status != "COMPLETED" {
		t.Fatalf("last = %v", got[len(got)-1])
	}
	// handle_ci_result is followed by call_llm once (the loop), then the normal tail.
	var steps []string
	for _, u := range got {
		steps = append(steps, u.Step)
	}
	joined := strings.Join(steps, ",")
	if !strings.Contains(joined, "run_ci,handle_ci_result,call_llm,commit_changes,run_ci,handle_ci_result,await_validation") {
		t.Fatalf("steps = %s", joined)
	}
}

func TestCancelStopsTheRun(t *testing.T) {
	s := startStack(t, "TICKETFLOW_SIM_STEP_DELAY=2s")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, c := s.startRun(ctx, map[string]any{"title": "to cancel"})
	readUntil(t, ctx, c, func(m wsMessage) bool { return m.Step == "prepare_repository" })
	if code := s.do("POST", "/api/tickets/"+id+"/cancel", nil, nil); code != 202 {
		t.Fatalf("cancel: %d", code)
	}
	msgs := readUntil(t, ctx, c, terminal)
	if last := msgs[len(msgs)-1]; last.Status != "CANCELLED" || last.Error == "" {
		t.Fatalf("terminal = %+v", last)
	}
}

func TestRestartKeepsTicketsAndHistory(t *testing.T) {
	s := startStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	id, c := s.startRun(ctx, map[string]any{"title": "survives restarts"})
	readUntil(t, ctx, c, terminal)
	c.CloseNow()
	var before struct{ Events []json.RawMessage }
	waitFor(t, func() bool {
		s.do("GET", "/api/tickets/"+id+"/events?limit=5000", nil, &before)
		var tk struct{ Status string }
		s.do("GET", "/api/tickets/"+id, nil, &tk)
		return tk.Status == "COMPLETED"
	})
	s.do("GET", "/api/tickets/"+id+"/events?limit=5000", nil, &before)

	s.stop(syscall.SIGTERM)
	if !strings.Contains(s.proc.Output(), "shutting down") {
		t.Errorf("no clean shutdown logged:\n%s", s.proc.Output())
	}
	s.start()
	var after struct{ Events []json.RawMessage }
	s.do("GET", "/api/tickets/"+id+"/events?limit=5000", nil, &after)
	if len(after.Events) != len(before.Events) || len(before.Events) == 0 {
		t.Fatalf("events before restart %d, after %d", len(before.Events), len(after.Events))
	}
	// The history replays from Kafka after the restart: a client without cursor gets the run.
	c = s.dial(ctx, id, "")
	defer c.CloseNow()
	msgs := readUntil(t, ctx, c, terminal)
	assertSequence(t, statusUpdates(msgs), briefSequence)
}

// TestKcatSeesCloudEvents reads the topic of a running stack with Debian's kcat, a Kafka
// client not written here.
func TestKcatSeesCloudEvents(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kcat is not installed (.ci/run installs it with apt)")
		}
		t.Skip("kcat not installed: apt-get install -y kcat")
	}
	s := startStack(t)
	id := s.createTicket(map[string]any{"title": "seen by kcat"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcat, "-C", "-b", s.kafka, "-t", "ticket-events", "-e", "-q",
		"-f", "%k\t%h\t%s\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	var found bool
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), "\t", 3)
		if len(parts) != 3 || parts[0] != id {
			continue
		}
		found = true
		for _, h := range []string{"ce_specversion=1.0", "ce_type=io.ticketflow.TicketCreated.v1", "ce_source=urn:ticketflow", "ce_id=", "ce_time="} {
			if !strings.Contains(parts[1], h) {
				t.Errorf("headers %q lack %q", parts[1], h)
			}
		}
		var env struct {
			Type     string `json:"type"`
			TicketID string `json:"ticket_id"`
		}
		if err := json.Unmarshal([]byte(parts[2]), &env); err != nil || env.Type != "TicketCreated" || env.TicketID != id {
			t.Errorf("value %q: %v", parts[2], err)
		}
	}
	if !found {
		t.Fatalf("kcat did not see ticket %s:\n%s", id, out)
	}
}

// TestRealExecutorAgainstLocalRepository: a ticket pointing at a local bare repository with a
// CI script completes with the real executor (offline demo LLM provider); its CI output lines
// arrive over the WebSocket as they are printed; its run branch is in the origin.
func TestRealExecutorAgainstLocalRepository(t *testing.T) {
	// The CI runs in the default bwrap sandbox, as an unprivileged uid that must be able to
	// reach the work dir.
	dir := sandboxtest.Dir(t)
	origin := filepath.Join(dir, "origin.git")
	gittest.OriginAt(t, origin, map[string]string{"ci.sh": "#!/bin/sh\necho 'ci: step one'\necho 'ci: step two' >&2\necho 'ci: all green'\n"})

	s := startStack(t, "TICKETFLOW_EXECUTOR=real", "TICKETFLOW_WORK_DIR="+filepath.Join(dir, "work"), "TICKETFLOW_FILE_REPO_ROOT="+dir,
		"TICKETFLOW_LLM_PROVIDER=demo", "ANTHROPIC_API_KEY=", "OPENAI_API_KEY=")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	id, c := s.startRun(ctx, map[string]any{"title": "real run", "repository_url": "file://" + origin,
		"base_branch": "main", "ci_command": "./ci.sh"})
	msgs := readUntil(t, ctx, c, terminal)
	if last := msgs[len(msgs)-1]; last.Status != "COMPLETED" {
		t.Fatalf("terminal = %+v", last)
	}
	assertSequence(t, statusUpdates(msgs), briefSequence)
	var ciLines []string
	for _, m := range msgs {
		if m.Type == "log" && strings.HasPrefix(m.Message, "ci: ") {
			ciLines = append(ciLines, m.Message)
		}
	}
	for _, want := range []string{"ci: step one", "ci: step two", "ci: all green"} {
		if !slices.Contains(ciLines, want) {
			t.Errorf("CI line %q not streamed; got %q", want, ciLines)
		}
	}
	if i, j := slices.Index(ciLines, "ci: step one"), slices.Index(ciLines, "ci: all green"); i > j {
		t.Errorf("stdout lines out of order: %q", ciLines)
	}
	if refs := gittest.Git(t, dir, "ls-remote", origin); !strings.Contains(refs, "refs/heads/ticketflow/"+id+"/1") {
		t.Fatalf("run branch not pushed; origin has:\n%s", refs)
	}
}

// TestRealRunAsPullRequestOnFakeGitHub: the real executor (demo LLM provider, local bare
// repository mapped onto a fake GitHub) opens a draft PR with the run's first push, COMPLETED
// marks it ready for review, and a signed approving review webhook of a repository member
// makes the ticket VALIDATED.
func TestRealRunAsPullRequestOnFakeGitHub(t *testing.T) {
	dir := sandboxtest.Dir(t)
	origin := filepath.Join(dir, "origin.git")
	gittest.OriginAt(t, origin, map[string]string{"ci.sh": "#!/bin/sh\necho 'ci: all green'\n"})
	gh := forgetest.NewGitHub(t, "acme/demo", "e2e-forge-token")
	const secret = "e2e-webhook-secret"
	s := startStack(t, "TICKETFLOW_EXECUTOR=real", "TICKETFLOW_WORK_DIR="+filepath.Join(dir, "work"), "TICKETFLOW_FILE_REPO_ROOT="+dir,
		"TICKETFLOW_LLM_PROVIDER=demo", "ANTHROPIC_API_KEY=", "OPENAI_API_KEY=",
		"TICKETFLOW_FORGE_REPOSITORIES=file://"+origin+"=https://github.com/acme/demo",
		"TICKETFLOW_FORGE_TOKENS=github.com/acme/*=e2e-forge-token",
		"TICKETFLOW_FORGE_API_URLS=github.com="+gh.API(),
		"TICKETFLOW_FORGE_WEBHOOK_SECRET="+secret,
		"TICKETFLOW_PUBLIC_URL=https://tf.example")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	id, c := s.startRun(ctx, map[string]any{"title": "pull request run", "description": "Make it so.",
		"repository_url": "file://" + origin, "base_branch": "main", "ci_command": "./ci.sh"})
	msgs := readUntil(t, ctx, c, terminal)
	if last := msgs[len(msgs)-1]; last.Status != "COMPLETED" {
		t.Fatalf("terminal = %+v", last)
	}
	prs := gh.PRs()
	if len(prs) != 1 || prs[0].Draft || prs[0].Head != forge.Branch(id) || prs[0].Base != "main" || !strings.Contains(prs[0].Body, "Make it so.") ||
		!strings.Contains(prs[0].Body, "https://tf.example/tickets/"+id) {
		t.Fatalf("PRs on the fake GitHub = %+v", prs)
	}
	if gh.Received("POST /repos/acme/demo/pulls") == 0 {
		t.Fatalf("no PR opened: %q", gh.Requests())
	}
	var tk struct {
		Status         string `json:"status"`
		PullRequestURL string `json:"pull_request_url"`
	}
	// The socket's COMPLETED can arrive before the projection shows it; the review comes after
	// a reviewer saw the run completed (a review of a run still in progress decides nothing).
	waitFor(t, func() bool {
		s.do("GET", "/api/tickets/"+id, nil, &tk)
		return tk.PullRequestURL == prs[0].URL && tk.Status == "COMPLETED"
	})

	body := forgetest.GitHubReview(4242, "approved", "MEMBER", "reviewer", "Looks good", prs[0].URL, prs[0].Head)
	hook := func(sig string) int {
		req, _ := http.NewRequest("POST", "http://"+s.http+"/api/forge/webhooks/github", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "pull_request_review")
		req.Header.Set("X-GitHub-Delivery", "e2e-delivery-1")
		req.Header.Set("X-Hub-Signature-256", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := hook(forgetest.SignGitHub("not-the-secret", body)); code != 401 {
		t.Fatalf("badly signed webhook: %d", code)
	}
	if code := hook(forgetest.SignGitHub(secret, body)); code != 200 {
		t.Fatalf("signed webhook: %d", code)
	}
	waitFor(t, func() bool { s.do("GET", "/api/tickets/"+id, nil, &tk); return tk.Status == "VALIDATED" })
}
