package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/services/processor/llm"
)

// targetFile is where the needed change is: far past any prompt budget (the repository holds
// several hundred files and megabytes before it in listing order).
const targetFile = "pkg/p417/target.go"

// bigRepo is a real git repository of 600 files, about 2 MiB of Go-like text, plus a binary
// file and a symbolic link pointing out of the tree.
func bigRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	filler := strings.Repeat("// filler line of a package that has nothing to do with the ticket\n", 50)
	for i := range 600 {
		p := filepath.Join(dir, fmt.Sprintf("pkg/p%03d/file.go", i))
		content := fmt.Sprintf("package p%03d\n\n%s\nfunc F%d() int { return %d }\n", i, filler, i, i)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	target := "package p417\n\n// TargetToFix returns the answer.\nfunc TargetToFix() int {\n\treturn 41\n}\n"
	must(t, os.WriteFile(filepath.Join(dir, targetFile), []byte(target), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "logo.bin"), []byte("TargetToFix\x00\x01\x02"), 0o644))
	must(t, os.Symlink("/etc", filepath.Join(dir, "escape")))
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fileCI is the ticket's CI: the target must return 42.
func fileCI(dir string) CIRunner {
	return func(context.Context) (CIReport, error) {
		b, err := os.ReadFile(filepath.Join(dir, targetFile))
		if err != nil {
			return CIReport{}, err
		}
		if strings.Contains(string(b), "return 42") {
			return CIReport{Passed: true, Tail: "ok  example/pkg/p417"}, nil
		}
		return CIReport{ExitCode: 1, Tail: "--- FAIL: TestTarget: got 41, want 42"}, nil
	}
}

// recorder is the Observer of the tests.
type recorder struct {
	mu    sync.Mutex
	tools []ToolCalled
	calls []LLMCalled
}

func (r *recorder) ToolCalled(_ context.Context, c ToolCalled) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tools = append(r.tools, c)
	return nil
}

func (r *recorder) LLMCalled(_ context.Context, c LLMCalled) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
	return nil
}

// move is one scripted answer: an HTTP status (0 = 200) or tool calls / final text.
type move struct {
	status int
	calls  []fakeCall
	text   string
	// check looks at the request this move answers (the previous tool results are in it).
	check func(t *testing.T, body string)
}

type fakeCall struct {
	name string
	args string // raw JSON as the model writes it (may be malformed)
}

// script is a fake provider speaking one wire format; every successful answer reports usage
// in[i] input and out[i] output tokens, i counting successful answers.
type script struct {
	t       *testing.T
	openai  bool
	moves   []move
	mu      sync.Mutex
	n, ok   int
	in, out []int64
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	i := s.n
	s.n++
	s.mu.Unlock()
	if i >= len(s.moves) {
		s.t.Errorf("request %d past the script", i)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	m := s.moves[i]
	if m.check != nil {
		m.check(s.t, string(body))
	}
	if m.status != 0 {
		if m.status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "0")
		}
		w.WriteHeader(m.status)
		_, _ = io.WriteString(w, `{"error":{"message":"scripted failure"}}`)
		return
	}
	in, out := int64(1000+137*s.ok), int64(50+11*s.ok)
	s.ok++
	s.in, s.out = append(s.in, in), append(s.out, out)
	if s.openai {
		msg := map[string]any{"role": "assistant", "content": nil}
		finish := "tool_calls"
		if len(m.calls) == 0 {
			msg["content"], finish = m.text, "stop"
		}
		var tcs []map[string]any
		for j, c := range m.calls {
			tcs = append(tcs, map[string]any{"id": fmt.Sprintf("call_%d_%d", i, j), "type": "function",
				"function": map[string]any{"name": c.name, "arguments": c.args}})
		}
		if tcs != nil {
			msg["tool_calls"] = tcs
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-test-2026",
			"choices": []map[string]any{{"index": 0, "message": msg, "finish_reason": finish}},
			"usage":   map[string]any{"prompt_tokens": in, "completion_tokens": out, "total_tokens": in + out}})
		return
	}
	content := []map[string]any{}
	stop := "tool_use"
	if m.text != "" {
		content = append(content, map[string]any{"type": "text", "text": m.text})
	}
	if len(m.calls) == 0 {
		stop = "end_turn"
	}
	for j, c := range m.calls {
		var input any
		if err := json.Unmarshal([]byte(c.args), &input); err != nil {
			s.t.Fatalf("anthropic tool input must be JSON: %s", c.args)
		}
		content = append(content, map[string]any{"type": "tool_use", "id": fmt.Sprintf("toolu_%d_%d", i, j), "name": c.name, "input": input})
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test-20260101",
		"content": content, "stop_reason": stop, "usage": map[string]any{"input_tokens": in, "output_tokens": out}})
}

var fastHTTP = llm.HTTPConfig{Timeout: 5 * time.Second, MaxAttempts: 3, Backoff: time.Millisecond}

func provider(t *testing.T, s *script) llm.ToolProvider {
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	if s.openai {
		return llm.NewOpenAI("sk-test", srv.URL+"/v1", "gpt-test", fastHTTP)
	}
	return llm.NewAnthropic("sk-ant-test", srv.URL, "claude-test", fastHTTP)
}

func prices(t *testing.T) *Prices {
	p, err := ParsePrices("claude-test=3:15, gpt-test=0.5:1.5", nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fixScript is the session of a model that finds the target in a repository it cannot see
// whole: a 429 and a 500 along the way, a malformed call and an unknown tool it recovers
// from, an escape attempt through a symlink, an edit, CI, and its summary.
func fixScript(openai bool) []move {
	malformed := `{"path": 7}`
	if openai {
		malformed = `{"path": "pkg/p417/target.go", ` // cut off: not JSON at all
	}
	return []move{
		{status: http.StatusTooManyRequests},
		{calls: []fakeCall{{"search", `{"pattern": "func TargetToFix\\("}`}}},
		{check: wants("pkg/p417/target.go:4: func TargetToFix() int {"), calls: []fakeCall{{"read_file", malformed}, {"frobnicate", `{}`}}},
		{status: http.StatusInternalServerError},
		{check: wants("not a valid JSON object", `no tool named \"frobnicate\"`),
			calls: []fakeCall{{"read_file", `{"path": "escape/passwd"}`}, {"read_file", `{"path": "pkg/p417/target.go", "start_line": 3, "end_line": 6}`}}},
		{check: wants("symbolic link", "lines 3-6 of 6", "return 41"),
			calls: []fakeCall{{"edit_file", `{"path": "pkg/p417/target.go", "old_text": "return 41", "new_text": "return 42"}`}}},
		{calls: []fakeCall{{"run_ci", `{}`}}},
		{check: wants("CI passed (exit code 0)"), text: "TargetToFix now returns 42, which the test expects."},
	}
}

// wants checks that the request carries each string (tool results of the previous turn).
func wants(subs ...string) func(*testing.T, string) {
	return func(t *testing.T, body string) {
		t.Helper()
		for _, s := range subs {
			if !strings.Contains(body, s) {
				t.Errorf("request lacks %q:\n%s", s, clip(body, 3000))
			}
		}
	}
}

func TestLoopFixesAFileBeyondAnyPromptBudget(t *testing.T) {
	for _, format := range []string{"anthropic", "openai"} {
		t.Run(format, func(t *testing.T) {
			dir := bigRepo(t)
			s := &script{t: t, openai: format == "openai", moves: fixScript(format == "openai")}
			rec := &recorder{}
			earlier := Spent{InputTokens: 10, OutputTokens: 5, CostUSD: 0.25}
			res, err := Run(context.Background(), Config{Provider: provider(t, s), Prices: prices(t), Dir: dir, RunCI: fileCI(dir),
				Observer: rec, Iteration: 2, Spent: earlier, Limits: Limits{MaxSteps: 20, MaxTokens: 1e6, MaxCostUSD: 10}},
				"Ticket: make TargetToFix return 42")
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Change.Edits) != 1 || res.Change.Edits[0].Path != targetFile || !strings.Contains(*res.Change.Edits[0].Content, "return 42") ||
				!strings.Contains(res.Change.Summary, "returns 42") {
				t.Errorf("change %+v", res.Change)
			}
			// Usage and cost: the sums of the fake provider's usage fields, priced by the table.
			var in, out int64
			var cost float64
			price := map[string]Price{"anthropic": {3, 15}, "openai": {0.5, 1.5}}[format]
			for i := range s.in {
				in, out = in+s.in[i], out+s.out[i]
				cost += (float64(s.in[i])*price.InPerMTok + float64(s.out[i])*price.OutPerMTok) / 1e6
			}
			if res.Spent.InputTokens != in+10 || res.Spent.OutputTokens != out+5 || math.Abs(res.Spent.CostUSD-(cost+0.25)) > 1e-9 {
				t.Errorf("spent %+v, want %d/%d tokens and $%f on top of the earlier iterations'", res.Spent, in, out, cost)
			}
			if len(rec.calls) != 6 || res.Steps != 6 {
				t.Fatalf("%d LLM calls reported, %d steps; want 6", len(rec.calls), res.Steps)
			}
			var reported float64
			retries := 0
			for _, c := range rec.calls {
				reported += c.CostUSD
				retries += c.Retries
				if c.Provider != format || !strings.Contains(c.Model, "test") {
					t.Errorf("call %+v", c)
				}
			}
			if math.Abs(reported-cost) > 1e-9 || retries != 2 || rec.calls[0].Retries != 1 || rec.calls[2].Retries != 1 {
				t.Errorf("reported cost %f (want %f), retries %d (want 2: one 429, one 500)", reported, cost, retries)
			}
			var tools []string
			for _, c := range rec.tools {
				tools = append(tools, fmt.Sprintf("%s:%v", c.Tool, c.OK))
			}
			want := "search:true read_file:false frobnicate:false read_file:false read_file:true edit_file:true run_ci:true"
			if strings.Join(tools, " ") != want {
				t.Errorf("tool calls %s, want %s", strings.Join(tools, " "), want)
			}
			if len(res.History) != 7 || res.History[0].Iteration != 2 || !strings.Contains(CompactHistory(res.History, 10), "edit_file") {
				t.Errorf("history %+v", res.History)
			}
		})
	}
}

func TestRefusalFails(t *testing.T) {
	for _, format := range []string{"anthropic", "openai"} {
		t.Run(format, func(t *testing.T) {
			dir := bigRepo(t)
			var p llm.ToolProvider
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if format == "openai" {
					_ = json.NewEncoder(w).Encode(map[string]any{"model": "gpt-test", "choices": []map[string]any{{"index": 0, "finish_reason": "stop",
						"message": map[string]any{"role": "assistant", "content": nil, "refusal": "I can't help with that."}}},
						"usage": map[string]any{"prompt_tokens": 10, "completion_tokens": 3}})
					return
				}
				_ = json.NewEncoder(w).Encode(map[string]any{"type": "message", "role": "assistant", "model": "claude-test", "stop_reason": "refusal",
					"content": []map[string]any{{"type": "text", "text": "I can't help with that."}}, "usage": map[string]any{"input_tokens": 10, "output_tokens": 3}})
			}))
			defer srv.Close()
			if format == "openai" {
				p = llm.NewOpenAI("", srv.URL, "gpt-test", fastHTTP)
			} else {
				p = llm.NewAnthropic("k", srv.URL, "claude-test", fastHTTP)
			}
			rec := &recorder{}
			res, err := Run(context.Background(), Config{Provider: p, Prices: prices(t), Dir: dir, Observer: rec}, "Ticket: x")
			if !errors.Is(err, llm.ErrRefused) || !strings.Contains(err.Error(), "can't help") {
				t.Fatalf("err %v", err)
			}
			if res.Spent.InputTokens != 10 || len(rec.calls) != 1 {
				t.Errorf("the refused call's usage is not counted: %+v", res.Spent)
			}
		})
	}
}

// loop is a model that never finishes: it searches forever.
func loop(n int) []move {
	m := make([]move, n)
	for i := range m {
		m[i] = move{calls: []fakeCall{{"search", fmt.Sprintf(`{"pattern": "F%d\\b"}`, i)}}}
	}
	return m
}

func TestLimitsEachFailWithTheirReason(t *testing.T) {
	for _, tc := range []struct {
		limit  string
		limits Limits
		spent  Spent
		want   string
	}{
		{"steps", Limits{MaxSteps: 3}, Spent{}, "TICKETFLOW_AGENT_MAX_STEPS=3"},
		{"tokens", Limits{MaxSteps: 50, MaxTokens: 2500}, Spent{}, "TICKETFLOW_AGENT_MAX_TOKENS=2500"},
		{"cost", Limits{MaxSteps: 50, MaxCostUSD: 0.01}, Spent{CostUSD: 0.0}, "TICKETFLOW_AGENT_MAX_COST_USD=0.01"},
		{"cost", Limits{MaxSteps: 50, MaxCostUSD: 0.01}, Spent{CostUSD: 0.02}, "TICKETFLOW_AGENT_MAX_COST_USD=0.01"}, // spent by earlier iterations
	} {
		t.Run(tc.limit, func(t *testing.T) {
			dir := bigRepo(t)
			s := &script{t: t, moves: loop(50)}
			_, err := Run(context.Background(), Config{Provider: provider(t, s), Prices: prices(t), Dir: dir, Observer: &recorder{},
				Limits: tc.limits, Spent: tc.spent}, "Ticket: x")
			var le *LimitError
			if !errors.As(err, &le) || le.Limit != tc.limit || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want the %s limit", err, tc.limit)
			}
		})
	}
}

func TestDurationLimit(t *testing.T) {
	dir := bigRepo(t)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // a model that never answers
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	p := llm.NewAnthropic("k", srv.URL, "claude-test", fastHTTP)
	_, err := Run(context.Background(), Config{Provider: p, Dir: dir, Observer: &recorder{}, Limits: Limits{MaxDuration: 100 * time.Millisecond}}, "Ticket: x")
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != "duration" || !strings.Contains(err.Error(), "TICKETFLOW_AGENT_MAX_DURATION=100ms") {
		t.Fatalf("err %v", err)
	}
}

// The demo provider drives the loop deterministically: search, read, write, CI, summary.
func TestDemoDrivesTheLoop(t *testing.T) {
	run := func() ([]string, Result) {
		dir := bigRepo(t)
		rec := &recorder{}
		res, err := Run(context.Background(), Config{Provider: llm.Demo{}, Dir: dir, RunCI: fileCI(dir), Observer: rec, Limits: Limits{MaxSteps: 10}},
			"Ticket: Fix TargetToFix\n\nIt must return 42.")
		if err != nil {
			t.Fatal(err)
		}
		var tools []string
		for _, c := range rec.tools {
			tools = append(tools, c.Tool+" "+c.Arguments)
		}
		return tools, res
	}
	a, res := run()
	b, _ := run()
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("not deterministic:\n%s\n---\n%s", a, b)
	}
	if len(a) != 4 || !strings.HasPrefix(a[0], "search") || !strings.Contains(a[1], targetFile) || !strings.HasPrefix(a[2], "write_file") || !strings.HasPrefix(a[3], "run_ci") {
		t.Errorf("demo tool calls:\n%s", strings.Join(a, "\n"))
	}
	if len(res.Change.Edits) != 1 || res.Change.Edits[0].Path != llm.DemoFile || !strings.Contains(*res.Change.Edits[0].Content, targetFile) {
		t.Errorf("demo change %+v", res.Change)
	}
}

func TestToolsAreConfinedAndBounded(t *testing.T) {
	dir := bigRepo(t)
	w := &workspace{dir: dir, changed: map[string]bool{}}
	ctx := context.Background()
	for _, tc := range []struct{ tool, args string }{
		{"write_file", `{"path": "../outside.txt", "content": "x"}`},
		{"write_file", `{"path": "/tmp/abs.txt", "content": "x"}`},
		{"write_file", `{"path": ".git/config", "content": "x"}`},
		{"write_file", `{"path": "escape/evil", "content": "x"}`},
		{"read_file", `{"path": "escape/passwd"}`},
		{"list_files", `{"path": "escape"}`},
		{"search", `{"pattern": "root", "path": "escape"}`},
		{"search", `{"pattern": "("}`},
		{"read_file", `{"path": "logo.bin"}`},
		{"edit_file", `{"path": "pkg/p001/file.go", "old_text": "filler", "new_text": "x"}`},
		{"read_file", `{"path": "pkg/p001/file.go", "bogus": 1}`},
		{"delete_file", `{"path": "nope.txt"}`},
	} {
		out, err := w.call(ctx, tc.tool, json.RawMessage(tc.args))
		var te errTool
		if !errors.As(err, &te) {
			t.Errorf("%s %s: %q, %v; want a tool error", tc.tool, tc.args, clip(out, 100), err)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "outside.txt")); err == nil {
		t.Error("wrote outside the work tree")
	}
	out, err := w.call(ctx, "search", json.RawMessage(`{"pattern": "filler"}`))
	if err != nil || strings.Count(out, "\n") > defSearchResults+1 || !strings.Contains(out, "more matches not shown") {
		t.Errorf("unbounded search: %d lines, %v", strings.Count(out, "\n"), err)
	}
	out, _ = w.call(ctx, "search", json.RawMessage(`{"pattern": "TargetToFix"}`))
	if strings.Contains(out, "logo.bin") || strings.Contains(out, ".git/") || !strings.Contains(out, targetFile) {
		t.Errorf("search must skip binaries and .git: %s", out)
	}
	out, _ = w.call(ctx, "list_files", json.RawMessage(`{}`))
	if strings.Count(out, "\n") > maxListedFiles+1 || !strings.Contains(out, "more (list a directory") || strings.Contains(out, ".git/") {
		t.Errorf("list_files: %d lines", strings.Count(out, "\n"))
	}
	if len(out) > maxResultBytes {
		t.Errorf("list_files answered %d bytes", len(out))
	}
}

func TestPrices(t *testing.T) {
	p, err := ParsePrices(DefaultPrices, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := p.Cost("claude-sonnet-4-5-20250929", llm.Usage{InputTokens: 1_000_000, OutputTokens: 100_000}); math.Abs(c-4.5) > 1e-9 {
		t.Errorf("dated model id cost %f, want 4.5", c)
	}
	if c := p.Cost("gpt-4o-mini", llm.Usage{InputTokens: 2_000_000}); math.Abs(c-0.3) > 1e-9 {
		t.Errorf("gpt-4o-mini cost %f (the longer gpt-4o-mini entry, not gpt-4o)", c)
	}
	if c := p.Cost("unknown-model", llm.Usage{InputTokens: 5}); c != 0 {
		t.Errorf("unknown model cost %f", c)
	}
	for _, bad := range []string{"m=1", "m=a:b", "=1:2", "m=-1:2"} {
		if _, err := ParsePrices(bad, nil); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// With Editable set, write_file, edit_file, delete_file and a whole-change answer outside it
// are refused as tool errors and change nothing; inside it they work.
func TestEditableBoundsChanges(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"README.md": "readme\n", "src/a.go": "package a\n"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	editable := func(p string) error {
		if strings.HasPrefix(filepath.ToSlash(filepath.Clean(p)), "src/") {
			return nil
		}
		return errors.New(p + " is not editable")
	}
	w := &workspace{dir: dir, editable: editable, changed: map[string]bool{}}
	ctx := context.Background()
	for _, tc := range []struct{ tool, args string }{
		{"write_file", `{"path": "README.md", "content": "x"}`},
		{"write_file", `{"path": "new.txt", "content": "x"}`},
		{"edit_file", `{"path": "README.md", "old_text": "readme", "new_text": "x"}`},
		{"delete_file", `{"path": "README.md"}`},
	} {
		_, err := w.call(ctx, tc.tool, json.RawMessage(tc.args))
		var te errTool
		if !errors.As(err, &te) || !strings.Contains(err.Error(), "is not editable") {
			t.Errorf("%s %s: %v; want the editable refusal as a tool error", tc.tool, tc.args, err)
		}
	}
	if _, err := w.finish(`{"summary": "s", "edits": [{"path": "src/b.go", "content": "package a"}, {"path": "README.md", "content": "x"}]}`); err == nil {
		t.Errorf("a whole change with a path outside was applied")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "README.md")); string(b) != "readme\n" || len(w.changed) != 0 {
		t.Errorf("README.md %q, changed %v", b, w.changed)
	}
	if _, err := os.Stat(filepath.Join(dir, "src/b.go")); err == nil {
		t.Errorf("part of a refused whole change was applied")
	}
	for _, args := range []string{`{"path": "src/a.go", "old_text": "package a", "new_text": "package b"}`} {
		if _, err := w.call(ctx, "edit_file", json.RawMessage(args)); err != nil {
			t.Errorf("inside the editable globs: %v", err)
		}
	}
	if _, err := w.call(ctx, "write_file", json.RawMessage(`{"path": "src/c.go", "content": "package c"}`)); err != nil || !w.changed["src/c.go"] {
		t.Errorf("write inside: %v", err)
	}
}
