package main

import (
	"strings"
	"testing"

	"github.com/ticketflow/ticketflow/cmd/ticketflow/client"
)

func ip(n int) *int   { return &n }
func bp(b bool) *bool { return &b }

func TestProgressBar(t *testing.T) {
	for _, tc := range []struct {
		p, w int
		want string
	}{
		{0, 10, "[··········]   0%"},
		{50, 10, "[█████·····]  50%"},
		{95, 20, "[███████████████████·]  95%"},
		{100, 10, "[██████████] 100%"},
		{130, 4, "[████] 100%"},
		{-5, 4, "[····]   0%"},
	} {
		if got := progressBar(tc.p, tc.w); got != tc.want {
			t.Errorf("progressBar(%d, %d) = %q, want %q", tc.p, tc.w, got, tc.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	for status, want := range map[string]int{"COMPLETED": 0, "VALIDATED": 0, "FAILED": 1, "CANCELLED": 2, "": 1} {
		if got := exitCode(status); got != want {
			t.Errorf("exitCode(%q) = %d, want %d", status, got, want)
		}
	}
}

func TestPlainLine(t *testing.T) {
	for _, tc := range []struct {
		m    client.Message
		want string
	}{
		{client.Message{Type: "status_update", Status: "PENDING", Progress: ip(0), Message: "Traitement en cours de démarrage..."}, "status PENDING 0%: Traitement en cours de démarrage..."},
		{client.Message{Type: "status_update", Status: "IN_PROGRESS", Step: "run_ci", Progress: ip(85)}, "status IN_PROGRESS 85% run_ci"},
		{client.Message{Type: "status_update", Status: "FAILED", Step: "run_ci", Progress: ip(85), Error: "boom"}, "status FAILED 85% run_ci (error: boom)"},
		{client.Message{Type: "log", Level: "info", Step: "call_llm", Message: "hello"}, "log   INFO  [call_llm] hello"},
		{client.Message{Type: "log", Message: "x"}, "log   INFO  x"},
		{client.Message{Type: "ci_result", Passed: bp(true), ExitCode: ip(0), DurationMS: 1500, Iteration: 2}, "ci    CI passed (exit 0, 1.5s, iteration 2)"},
		{client.Message{Type: "ci_result", Passed: bp(false), ExitCode: ip(3), Iteration: 1}, "ci    CI failed (exit 3, 0s, iteration 1)"},
		{client.Message{Type: "agent_tool", Tool: "read_file", Arguments: `{"path":"a.go"}`, Result: "a.go lines 1-9 of 9", OK: bp(true), DurationMS: 2},
			`tool  ✓ read_file {"path":"a.go"} → a.go lines 1-9 of 9 (2ms)`},
		{client.Message{Type: "agent_tool", Tool: "frobnicate", Arguments: `{}`, Error: "no tool named \"frobnicate\"", OK: bp(false)},
			`tool  ✗ frobnicate {} → no tool named "frobnicate" (0s)`},
		{client.Message{Type: "llm_call", Provider: "anthropic", Model: "claude-sonnet-4-5", InputTokens: 1200, OutputTokens: 80, CostUSD: 0.0048, LatencyMS: 900, Retries: 1},
			"llm   anthropic claude-sonnet-4-5: 1200 in / 80 out tokens, $0.0048, 900ms, 1 retries"},
		{client.Message{Type: "connected"}, ""},
		{client.Message{Type: "replay_complete"}, ""},
	} {
		if got := plainLine(tc.m); got != tc.want {
			t.Errorf("plainLine(%+v) = %q, want %q", tc.m, got, tc.want)
		}
	}
}

func TestRunViewApplyAndRender(t *testing.T) {
	upd := func(status, step string, p int) client.Message {
		return client.Message{Type: "status_update", Status: status, Step: step, Progress: ip(p)}
	}
	for _, tc := range []struct {
		name  string
		msgs  []client.Message
		marks string // the 8 marks in order
		bar   int
	}{
		{"pending", []client.Message{upd("PENDING", "", 0)}, "········", 0},
		{"third step", []client.Message{upd("PENDING", "", 0), upd("IN_PROGRESS", "check_iterations", 5), upd("IN_PROGRESS", "prepare_repository", 20), upd("IN_PROGRESS", "load_conversation", 30)}, "✓✓⠋·····", 30},
		{"completed", []client.Message{upd("IN_PROGRESS", "run_ci", 85), upd("COMPLETED", "await_validation", 100)}, "✓✓✓✓✓✓✓✓", 100},
		{"failed at run_ci", []client.Message{upd("IN_PROGRESS", "run_ci", 85), upd("FAILED", "run_ci", 85)}, "✓✓✓✓✓✗··", 85},
		{"step failed then next iteration", []client.Message{
			upd("IN_PROGRESS", "handle_ci_result", 95),
			{Type: "step_completed", Step: "handle_ci_result", Outcome: "failed"},
			upd("IN_PROGRESS", "check_iterations", 5),
		}, "⠋·······", 5},
		{"cancelled", []client.Message{upd("IN_PROGRESS", "call_llm", 50), upd("CANCELLED", "", 50)}, "✓✓✓✗····", 50},
	} {
		v := newRunView("T1")
		for _, m := range tc.msgs {
			v.apply(m)
		}
		out := v.render(0)
		lines := strings.Split(out, "\n")
		var marks strings.Builder
		for _, l := range lines[1:9] {
			r := []rune(strings.TrimSpace(l))
			marks.WriteRune(r[0])
		}
		if marks.String() != tc.marks {
			t.Errorf("%s: marks %q, want %q\n%s", tc.name, marks.String(), tc.marks, out)
		}
		if !strings.Contains(out, progressBar(tc.bar, 40)) {
			t.Errorf("%s: no bar at %d%%:\n%s", tc.name, tc.bar, out)
		}
	}
}

func TestLogMessagesFromAuditTrail(t *testing.T) {
	items := []client.EventItem{
		{Cursor: "v1.0-1", Event: []byte(`{"id":"e1","type":"StepStarted","ticket_id":"T","data":{"step":"call_llm"}}`)},
		{Cursor: "v1.0-2", Event: []byte(`{"id":"e2","type":"LogEmitted","ticket_id":"T","run_id":"R","data":{"level":"info","message":"hi","step":"call_llm"}}`)},
		{Cursor: "v1.0-3", Event: []byte(`{"id":"e3","type":"AgentToolCalled","ticket_id":"T","run_id":"R","data":{"iteration":1,"agent_step":1,"tool":"search","arguments":"{\"pattern\":\"x\"}","result":"no matches","ok":true,"duration_ms":4}}`)},
		{Cursor: "v1.0-4", Event: []byte(`{"id":"e4","type":"LLMCallCompleted","ticket_id":"T","run_id":"R","data":{"iteration":1,"agent_step":1,"provider":"demo","model":"demo"}}`)},
	}
	got := logMessages(items)
	if len(got) != 2 || got[0].Message != "hi" || got[0].EventID != "e2" || logLine(got[0]) != "INFO  [call_llm] hi" {
		t.Fatalf("logMessages = %+v", got)
	}
	if want := `TOOL  [call_llm] ✓ search {"pattern":"x"} → no matches (4ms)`; logLine(got[1]) != want {
		t.Errorf("tool line %q, want %q", logLine(got[1]), want)
	}
}

// The live view sums the run's llm_call messages.
func TestRunViewShowsLLMCost(t *testing.T) {
	v := newRunView("T1")
	for _, in := range []int64{1000, 2500} {
		v.apply(client.Message{Type: "llm_call", Provider: "anthropic", Model: "m", InputTokens: in, OutputTokens: 100, CostUSD: 0.5})
	}
	if out := v.render(0); !strings.Contains(out, "LLM: 2 call(s), 3500 in / 200 out tokens, $1.0000") {
		t.Errorf("render:\n%s", out)
	}
}

func TestSummarize(t *testing.T) {
	got := summarize(map[string]any{"success": true, "ticket_id": "T", "status": "CANCELLED"})
	if got != "ok status=CANCELLED ticket_id=T" {
		t.Fatalf("summarize = %q", got)
	}
}

func TestFitWidth(t *testing.T) {
	for _, tc := range []struct {
		in    string
		width int
		want  string
	}{
		{"abc\ndefgh\n", 4, "abc\ndef\n"},
		{"✓ étape\n", 4, "✓ é\n"},
		{"abc\n", 0, "abc\n"},
		{"abcdef", 3, "ab"},
	} {
		if got := fitWidth(tc.in, tc.width); got != tc.want {
			t.Errorf("fitWidth(%q, %d) = %q, want %q", tc.in, tc.width, got, tc.want)
		}
	}
}
