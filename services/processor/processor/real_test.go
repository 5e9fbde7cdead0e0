package processor

// End-to-end tests of the real executor through the engine: embedded Kafka over TCP, a real
// PostgreSQL database, real git repositories (a bare origin made here), real CI child
// processes, and HTTP servers speaking the providers' formats.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/gittest"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/kafka/kafkatest"
	"github.com/ticketflow/ticketflow/libs/postgres"
	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
	"github.com/ticketflow/ticketflow/libs/repourl"
	"github.com/ticketflow/ticketflow/services/processor/executor"
	"github.com/twmb/franz-go/pkg/kgo"
)

type harness struct {
	t    *testing.T
	kcfg config.Kafka
	prod *kafka.Producer
	db   *pgxpool.Pool

	mu  sync.Mutex
	evs []events.Event
}

// newHarness starts the broker, a database and a processor with cfg, and collects every
// event of the topic.
func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	b := kafkatest.Start(t, 4)
	h := &harness{t: t, kcfg: b.Config, prod: b.Producer}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := postgres.Connect(ctx, config.Postgres{URL: pgtest.NewDatabase(t), MaxConns: 8}, log)
	if err != nil {
		t.Fatal(err)
	}
	h.db = db
	if cfg.MaxIterations == 0 {
		cfg.MaxIterations = 3
	}
	cfg.Group, cfg.Concurrency, cfg.Lease, cfg.InstanceID = "processor", 8, 5*time.Second, "test-"+uuid.NewString()[:8]
	proc, err := New(cfg, Deps{Log: log, DB: db, Kafka: h.kcfg})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = proc.Run(ctx) }()
	tail, err := kafka.NewClient(h.kcfg, kgo.ConsumeTopics(h.kcfg.Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	tailDone := make(chan struct{})
	go func() {
		defer close(tailDone)
		for ctx.Err() == nil {
			cl := tail.PollFetches(ctx)
			cl.EachRecord(func(rec *kgo.Record) {
				if ev, err := kafka.Event(rec); err == nil {
					h.mu.Lock()
					h.evs = append(h.evs, ev)
					h.mu.Unlock()
				}
			})
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		<-tailDone
		tail.Close()
		db.Close()
	})
	select {
	case <-proc.Running():
	case <-time.After(30 * time.Second):
		t.Fatal("processor not consuming")
	}
	return h
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func (h *harness) append(payloads ...events.Envelope) {
	h.t.Helper()
	if _, err := h.prod.Append(context.Background(), payloads...); err != nil {
		h.t.Fatal(err)
	}
}

// ticket appends TicketCreated and a run request; it returns the ticket and run ids.
func (h *harness) ticket(repoURL, ci string) (string, string) {
	id, run := uuid.NewString(), uuid.NewString()
	h.append(events.MustNew(id, "", "user:alice", &events.TicketCreatedData{Title: "Add a greeting", Description: "Create greeting.txt saying hello.",
		RepositoryURL: repoURL, BaseBranch: "main", CICommand: ci, Owner: "alice"}),
		events.MustNew(id, run, "user:alice", &events.ProcessingRequestedData{RequestedBy: "alice", Reason: "start"}))
	return id, run
}

func (h *harness) runEvents(runID string) []events.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return runOnly(h.evs, runID)
}

// waitFor polls the run's events until cond holds.
func (h *harness) waitFor(runID string, timeout time.Duration, what string, cond func([]events.Event) bool) []events.Event {
	h.t.Helper()
	return poll(h.t, timeout, what, func() []events.Event { return h.runEvents(runID) }, cond)
}

// runOnly returns (a copy of) the events of evs that belong to run runID.
func runOnly(evs []events.Event, runID string) []events.Event {
	var out []events.Event
	for _, ev := range evs {
		if ev.RunID == runID {
			out = append(out, ev)
		}
	}
	return out
}

// poll calls evs until cond holds for what it returns, failing t with the events after
// timeout.
func poll(t testing.TB, timeout time.Duration, what string, evs func() []events.Event, cond func([]events.Event) bool) []events.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := evs()
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; run events:\n%s", what, dump(got))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *harness) waitTerminal(runID string) events.Event {
	evs := h.waitFor(runID, 90*time.Second, "a terminal event", func(evs []events.Event) bool {
		for _, ev := range evs {
			if events.Terminal(ev.Type) {
				return true
			}
		}
		return false
	})
	for _, ev := range evs {
		if events.Terminal(ev.Type) {
			return ev
		}
	}
	panic("unreachable")
}

// waitCompleted waits for the run's terminal event and fails the test unless it is
// RunCompleted; it returns that event and the run's events.
func (h *harness) waitCompleted(runID string) (events.Event, []events.Event) {
	h.t.Helper()
	term := h.waitTerminal(runID)
	evs := h.runEvents(runID)
	if term.Type != events.RunCompleted {
		h.t.Fatalf("terminal %s, want RunCompleted:\n%s", term.Type, dump(evs))
	}
	return term, evs
}

// waitFailed waits for the run's terminal event and fails the test unless it is RunFailed;
// it returns that event's payload and the run's events.
func (h *harness) waitFailed(runID string) (*events.RunFailedData, []events.Event) {
	h.t.Helper()
	term := h.waitTerminal(runID)
	evs := h.runEvents(runID)
	if term.Type != events.RunFailed {
		h.t.Fatalf("terminal %s, want RunFailed:\n%s", term.Type, dump(evs))
	}
	return payload[*events.RunFailedData](h.t, term), evs
}

// count is how many of evs are of type typ.
func count(evs []events.Event, typ events.Type) int {
	n := 0
	for _, ev := range evs {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

func dump(evs []events.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "  %s %s\n", ev.Type, ev.Data)
	}
	return b.String()
}

func payload[T events.Payload](t *testing.T, ev events.Event) T {
	t.Helper()
	p, err := ev.Decode()
	if err != nil {
		t.Fatalf("%s: %v", ev.Type, err)
	}
	return p.(T)
}

// newOrigin makes a bare repository (main: README and ci.sh) and returns its file:// URL.
// ciScript checks greeting.txt and prints numbered lines on stdout and stderr.
const ciScript = `#!/bin/sh
echo "ci line 1"
echo "ci line 2 (stderr)" >&2
echo "ci line 3"
if [ "$(cat greeting.txt 2>/dev/null)" != "hello" ]; then
  echo "FAIL: greeting.txt must say hello, got '$(cat greeting.txt 2>/dev/null)'"
  exit 7
fi
echo "ci line 4: all good"
`

// fakeAnthropic answers like the Messages API: a wrong greeting first, the right one once
// the request carries the CI failure. It records every request body.
type fakeLLM struct {
	mu       sync.Mutex
	requests []string
	openai   bool
}

func (f *fakeLLM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, string(body))
	f.mu.Unlock()
	content := "bonjour"
	if strings.Contains(string(body), "got 'bonjour'") { // the CI failure is in the conversation
		content = "hello"
	}
	change, _ := json.Marshal(map[string]any{"summary": "write greeting.txt with " + content,
		"edits": []map[string]any{{"path": "greeting.txt", "content": content}}})
	if f.openai {
		_ = json.NewEncoder(w).Encode(map[string]any{"choices": []map[string]any{{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": string(change)}}}})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "message", "role": "assistant", "stop_reason": "end_turn", "model": "claude-test",
		"content": []map[string]any{{"type": "text", "text": "```json\n" + string(change) + "\n```"}}, "usage": map[string]any{"input_tokens": 100, "output_tokens": 20}})
}

func (f *fakeLLM) bodies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func realConfig(t *testing.T) Config {
	// file:// origins (newOrigin) are t.TempDir()s: the test's own temporary directory is the
	// root; the work dir inside it stays refused (repourl.Policy.Forbid). These tests drive the
	// executor's logic with host processes; the sandbox has its own tests (ci, and the
	// hostile-tenant suite).
	return Config{Executor: "real", Real: executor.RealConfig{WorkDir: t.TempDir(), Repos: repourl.Config{FileRoot: filepath.Dir(t.TempDir())},
		LLMTimeout: 10 * time.Second, LLMMaxAttempts: 2, CITimeout: time.Minute, CISandbox: "none"}}
}

// anthropicConfig is realConfig with the Anthropic provider pointed at model, served until
// the test ends, as "claude-test" with a test key.
func anthropicConfig(t *testing.T, model http.Handler) Config {
	srv := httptest.NewServer(model)
	t.Cleanup(srv.Close)
	cfg := realConfig(t)
	cfg.Real.AnthropicKey, cfg.Real.AnthropicBaseURL, cfg.Real.AnthropicModel = "sk-ant-e2e", srv.URL, "claude-test"
	return cfg
}

// ciLoop is a completed run of the ticket "sh ci.sh" on an origin whose CI (ciScript) fails
// until greeting.txt says hello, the agent's model behind the Anthropic provider priced at
// $3 and $15 per million input and output tokens.
type ciLoop struct {
	h                 *harness
	bare, ticket, run string
	done              *events.RunCompletedData
	evs               []events.Event
}

func runCILoop(t *testing.T, model http.Handler) ciLoop {
	cfg := anthropicConfig(t, model)
	cfg.Real.LLMPrices = "claude-test=3:15"
	h := newHarness(t, cfg)
	url, bare := gittest.Origin(t, map[string]string{"README.md": "# demo\n", "ci.sh": ciScript})
	ticket, run := h.ticket(url, "sh ci.sh")
	term, evs := h.waitCompleted(run)
	return ciLoop{h, bare, ticket, run, payload[*events.RunCompletedData](t, term), evs}
}

// A failing CI loops back to call_llm with the failure in the next request; the second
// iteration passes; both run branches are in the origin; CI lines arrive in order.
func TestRealRunLoopsOnCIFailureAndCompletes(t *testing.T) {
	llmSrv := &fakeLLM{}
	r := runCILoop(t, llmSrv)
	bare, ticket, done, evs := r.bare, r.ticket, r.done, r.evs
	branch := fmt.Sprintf("ticketflow/%s/2", ticket)
	if done.Iteration != 2 || done.Branch != branch {
		t.Errorf("completed %+v, want iteration 2 on %s", done, branch)
	}
	// Two model calls of 100 input and 20 output tokens at $3 and $15 per million.
	if done.LLMInputTokens != 200 || done.LLMOutputTokens != 40 || math.Abs(done.LLMCostUSD-(200*3+40*15)/1e6) > 1e-12 {
		t.Errorf("run totals %d/%d tokens, $%f", done.LLMInputTokens, done.LLMOutputTokens, done.LLMCostUSD)
	}
	if got := gittest.Git(t, bare, "show", branch+":greeting.txt"); got != "hello" {
		t.Errorf("origin %s greeting.txt = %q", branch, got)
	}
	if got := gittest.Git(t, bare, "show", fmt.Sprintf("ticketflow/%s/1:greeting.txt", ticket)); got != "bonjour" {
		t.Errorf("origin iteration 1 greeting.txt = %q", got)
	}
	if got := gittest.Git(t, bare, "rev-parse", "--verify", "main"); got == gittest.Git(t, bare, "rev-parse", branch) {
		t.Error("main moved")
	}

	bodies := llmSrv.bodies()
	if len(bodies) != 2 {
		t.Fatalf("%d LLM requests, want 2", len(bodies))
	}
	if strings.Contains(bodies[0], "got 'bonjour'") || !strings.Contains(bodies[1], "greeting.txt must say hello, got 'bonjour'") ||
		!strings.Contains(bodies[1], "exit code 7") || !strings.Contains(bodies[0], "Create greeting.txt saying hello.") {
		t.Errorf("LLM requests do not carry the ticket and then the CI failure:\n1: %s\n2: %s", bodies[0], bodies[1])
	}

	// Lines keep their order within each stream (stdout and stderr are separate pipes, so
	// their interleaving is up to the scheduler).
	ciLines := map[string][]string{}
	var results []*events.CIResultData
	for _, ev := range evs {
		switch ev.Type {
		case events.LogEmitted:
			if l := payload[*events.LogEmittedData](t, ev); l.Stream != "" {
				ciLines[l.Stream] = append(ciLines[l.Stream], l.Message)
			}
		case events.CIResult:
			results = append(results, payload[*events.CIResultData](t, ev))
		}
	}
	wantOut := []string{"ci line 1", "ci line 3", "FAIL: greeting.txt must say hello, got 'bonjour'", "ci line 1", "ci line 3", "ci line 4: all good"}
	wantErr := []string{"ci line 2 (stderr)", "ci line 2 (stderr)"}
	if strings.Join(ciLines["stdout"], "\n") != strings.Join(wantOut, "\n") || strings.Join(ciLines["stderr"], "\n") != strings.Join(wantErr, "\n") {
		t.Errorf("CI lines %q, want stdout %q and stderr %q", ciLines, wantOut, wantErr)
	}
	if len(results) != 2 || results[0].Passed || results[0].ExitCode != 7 || !results[1].Passed || !strings.Contains(results[0].OutputTail, "must say hello") {
		t.Errorf("CI results %+v", results)
	}
}

// The OpenAI-compatible provider drives a run to completion in one iteration, and a review
// comment's follow-up run continues from the previous run branch with the comment in the
// conversation.
func TestRealRunWithOpenAICompatibleProviderAndFollowUp(t *testing.T) {
	llmSrv := &fakeLLM{openai: true}
	srv := httptest.NewServer(llmSrv)
	defer srv.Close()
	cfg := realConfig(t)
	cfg.Real.LLMProvider, cfg.Real.OpenAIBaseURL, cfg.Real.OpenAIModel = "openai", srv.URL+"/v1", "local-model"
	h := newHarness(t, cfg)
	url, bare := gittest.Origin(t, map[string]string{"ci.sh": "#!/bin/sh\ntest -f greeting.txt && echo present\n"})
	ticket, run := h.ticket(url, "sh ci.sh")
	h.waitCompleted(run)
	next := uuid.NewString()
	h.append(events.MustNew(ticket, run, "user:bob", &events.ChangesRequestedData{RequestedBy: "bob", Comment: "please also be polite", NextRunID: next}),
		events.MustNew(ticket, next, "user:bob", &events.ProcessingRequestedData{RequestedBy: "bob", Reason: "changes_requested"}))
	h.waitCompleted(next)
	bodies := llmSrv.bodies()
	if len(bodies) != 2 || !strings.Contains(bodies[1], "please also be polite") || !strings.Contains(bodies[1], `greeting.txt\n`) {
		t.Errorf("follow-up request lacks the review comment or the previous run's files:\n%s", bodies[len(bodies)-1])
	}
	if len(bodies) == 2 && (!strings.Contains(bodies[1], "Earlier runs on this ticket") || !strings.Contains(bodies[1], "run 1, iteration 1: ") || !strings.Contains(bodies[1], "CI passed")) {
		t.Errorf("follow-up request lacks the earlier run's LLM turn:\n%s", bodies[1])
	}
	branch := fmt.Sprintf("ticketflow/%s/2", ticket)
	parent := gittest.Git(t, bare, "rev-parse", branch+"^")
	if first := gittest.Git(t, bare, "rev-parse", fmt.Sprintf("ticketflow/%s/1", ticket)); parent != first {
		t.Errorf("follow-up commit's parent %s, want the first run's commit %s", parent, first)
	}
}

// Without a key the demo provider makes its change, says so in the log, and the run
// completes; the CI environment holds none of the processor's secrets.
func TestRealRunWithDemoProvider(t *testing.T) {
	cfg := realConfig(t)
	cfg.Real.GitToken = "ghp-demo-token-secret"
	h := newHarness(t, cfg)
	url, bare := gittest.Origin(t, map[string]string{"README.md": "x\n"})
	ticket, run := h.ticket(url, "test -f ticketflow-demo.md && env")
	_, evs := h.waitCompleted(run)
	all := dump(evs)
	if !strings.Contains(all, "démonstration hors ligne") || !strings.Contains(all, "PATH=") {
		t.Errorf("no demo notice or no CI env output:\n%s", all)
	}
	if strings.Contains(all, "ghp-demo-token-secret") {
		t.Errorf("token in events:\n%s", all)
	}
	if got := gittest.Git(t, bare, "show", fmt.Sprintf("ticketflow/%s/1:ticketflow-demo.md", ticket)); !strings.Contains(got, "no LLM was called") {
		t.Errorf("demo file %q", got)
	}
	// The demo drives the agent loop: its tool calls and model calls are in the log, in order.
	var tools []string
	llmCalls := 0
	for _, ev := range evs {
		switch ev.Type {
		case events.AgentToolCalled:
			c := payload[*events.AgentToolCalledData](t, ev)
			if !c.OK || c.Iteration != 1 {
				t.Errorf("tool call %+v", c)
			}
			tools = append(tools, c.Tool)
		case events.LLMCallCompleted:
			if c := payload[*events.LLMCallCompletedData](t, ev); c.Provider != "demo" || c.CostUSD != 0 {
				t.Errorf("LLM call %+v", c)
			}
			llmCalls++
		}
	}
	if strings.Join(tools, ",") != "search,list_files,write_file,run_ci" || llmCalls != 5 {
		t.Errorf("agent tool calls %v and %d LLM calls, want search,list_files,write_file,run_ci and 5", tools, llmCalls)
	}
}

// Cancelling during run_ci kills the CI process group: the background sleep dies too.
func TestCancelKillsCIProcessGroup(t *testing.T) {
	h := newHarness(t, realConfig(t))
	url, _ := gittest.Origin(t, map[string]string{"README.md": "x\n"})
	pidFile := filepath.Join(t.TempDir(), "sleep.pid")
	ticket, run := h.ticket(url, fmt.Sprintf("sleep 1000 & echo $! > %s; echo started; wait", pidFile))
	h.waitFor(run, 60*time.Second, "CI output", func(evs []events.Event) bool {
		return strings.Contains(dump(evs), `"message":"started"`)
	})
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("sleep %d not running: %v", pid, err)
	}
	h.append(events.MustNew(ticket, run, "user:alice", &events.CancelRequestedData{RequestedBy: "alice"}))
	if term := h.waitTerminal(run); term.Type != events.RunCancelled {
		t.Fatalf("terminal %s:\n%s", term.Type, dump(h.runEvents(run)))
	}
	for i := 0; ; i++ {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break
		}
		if i == 100 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("CI child %d survived the cancel", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Invalid repository URLs fail the run at prepare_repository without running git.
func TestRealRejectsUnsafeRepositoryURL(t *testing.T) {
	cfg := realConfig(t)
	cfg.Real.Repos.FileRoot = t.TempDir() // origins are elsewhere
	h := newHarness(t, cfg)
	url, _ := gittest.Origin(t, map[string]string{"README.md": "x\n"})
	_, run := h.ticket(url, "true")
	if f, _ := h.waitFailed(run); f.Step != "prepare_repository" || !strings.Contains(f.Error, "must be inside TICKETFLOW_FILE_REPO_ROOT") {
		t.Errorf("failed %+v", f)
	}
	_, run2 := h.ticket("--upload-pack=touch /tmp/ticketflow-pwned", "true")
	h.waitFailed(run2)
}

// toolModel is a Messages API model that works with tools: it writes greeting.txt (bonjour
// the first time, hello once the conversation carries the CI failure) and finishes. Every
// request body is kept.
type toolModel struct {
	mu       sync.Mutex
	requests []string
}

func (f *toolModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, string(body))
	f.mu.Unlock()
	reply := func(stop string, content ...map[string]any) {
		_ = json.NewEncoder(w).Encode(map[string]any{"type": "message", "role": "assistant", "model": "claude-test", "stop_reason": stop,
			"content": content, "usage": map[string]any{"input_tokens": 300, "output_tokens": 30}})
	}
	if strings.Contains(string(body), `"tool_result"`) { // the write went through: done
		reply("end_turn", map[string]any{"type": "text", "text": "Wrote greeting.txt."})
		return
	}
	greeting := "bonjour"
	if strings.Contains(string(body), "got 'bonjour'") || strings.Contains(string(body), "Review comments") {
		greeting = "hello"
	}
	reply("tool_use", map[string]any{"type": "tool_use", "id": "toolu_1", "name": "write_file",
		"input": map[string]any{"path": "greeting.txt", "content": greeting}})
}

func (f *toolModel) bodies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// After a CI failure the next iteration's conversation carries the earlier tool calls
// (compactly) and the failure; the run's totals are the sums of the provider's usage.
func TestRealAgentLoopCarriesToolHistoryAcrossIterations(t *testing.T) {
	model := &toolModel{}
	r := runCILoop(t, model)
	h, ticket, run, done, evs := r.h, r.ticket, r.run, r.done, r.evs
	bodies := model.bodies()
	if len(bodies) != 4 || done.Iteration != 2 {
		t.Fatalf("%d model calls and iteration %d, want 4 and 2", len(bodies), done.Iteration)
	}
	if !strings.Contains(bodies[2], `iteration 1: write_file {\"content\":\"bonjour\",\"path\":\"greeting.txt\"} → wrote greeting.txt`) ||
		!strings.Contains(bodies[2], "got 'bonjour'") {
		t.Errorf("the second iteration's task lacks the first one's tool calls or CI failure:\n%s", bodies[2])
	}
	if done.LLMInputTokens != 1200 || done.LLMOutputTokens != 120 || math.Abs(done.LLMCostUSD-(1200*3+120*15)/1e6) > 1e-12 {
		t.Errorf("run totals %+v", done)
	}
	if tools := count(evs, events.AgentToolCalled); tools != 2 {
		t.Errorf("%d AgentToolCalled events, want 2", tools)
	}

	// A reviewer asks for changes: the follow-up run's task carries the earlier run's tool
	// calls, compactly, and the comment.
	next := uuid.NewString()
	h.append(events.MustNew(ticket, run, "user:bob", &events.ChangesRequestedData{RequestedBy: "bob", Comment: "also greet in French", NextRunID: next}),
		events.MustNew(ticket, next, "user:bob", &events.ProcessingRequestedData{RequestedBy: "bob", Reason: "changes_requested"}))
	h.waitCompleted(next)
	bodies = model.bodies()
	if len(bodies) < 5 || !strings.Contains(bodies[4], "Tool calls of the last earlier runs") ||
		!strings.Contains(bodies[4], `iteration 2: write_file {\"content\":\"hello\"`) || !strings.Contains(bodies[4], "also greet in French") {
		t.Errorf("the follow-up run's task lacks the earlier run's tool calls or the comment:\n%s", bodies[len(bodies)-1])
	}
}

// A model that never stops calling tools fails the run at call_llm with the limit it hit.
func TestRealAgentStepLimitFailsTheRun(t *testing.T) {
	cfg := anthropicConfig(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"type": "message", "role": "assistant", "model": "claude-test", "stop_reason": "tool_use",
			"content": []map[string]any{{"type": "tool_use", "id": "toolu_1", "name": "list_files", "input": map[string]any{}}},
			"usage":   map[string]any{"input_tokens": 10, "output_tokens": 1}})
	}))
	cfg.Real.AgentMaxSteps = 3
	h := newHarness(t, cfg)
	url, _ := gittest.Origin(t, map[string]string{"README.md": "x\n"})
	_, run := h.ticket(url, "true")
	f, _ := h.waitFailed(run)
	if f.Step != "call_llm" || !strings.Contains(f.Error, "agent limit reached") || !strings.Contains(f.Error, "TICKETFLOW_AGENT_MAX_STEPS=3") ||
		f.LLMInputTokens != 30 || f.LLMOutputTokens != 3 {
		t.Errorf("failed %+v", f)
	}
}

// A CI command that prints nothing still completes the run (its artifact is empty).
func TestRealRunWithSilentCI(t *testing.T) {
	h := newHarness(t, realConfig(t))
	url, _ := gittest.Origin(t, map[string]string{"README.md": "x\n"})
	_, run := h.ticket(url, "test -f ticketflow-demo.md")
	h.waitCompleted(run)
}
