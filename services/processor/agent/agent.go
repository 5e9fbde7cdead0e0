// Package agent is the coding agent of call_llm: a bounded loop in which the model lists,
// reads and searches the repository, edits files and runs the ticket's CI through tools,
// until it answers without a tool call. Every tool call and every model call is reported to
// an Observer (the executor appends them as events), and the loop stops with a LimitError
// when it reaches its step, token, time or cost bound.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ticketflow/ticketflow/services/processor/llm"
)

// Limits bound one run of the agent. Zero values take the defaults of the executor's
// configuration (see executor.RealConfig: TICKETFLOW_AGENT_*).
type Limits struct {
	// MaxSteps is the number of model calls of one call_llm step.
	MaxSteps int
	// MaxTokens bounds input+output tokens of the whole run (every iteration).
	MaxTokens int64
	// MaxDuration bounds the wall time of one call_llm step.
	MaxDuration time.Duration
	// MaxCostUSD bounds the cost of the whole run (0 = no bound).
	MaxCostUSD float64
	// MaxResponseTokens is the max_tokens of each model call.
	MaxResponseTokens int
}

// LimitError is the loop stopped by one of its Limits.
type LimitError struct {
	Limit string // steps, tokens, duration, cost
	Msg   string
}

func (e *LimitError) Error() string { return "agent limit reached: " + e.Msg }

// Spent is what the run's model calls have used so far.
type Spent struct {
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	CostUSD      float64 `json:"cost_usd"`
}

func (s Spent) tokens() int64 { return s.InputTokens + s.OutputTokens }

// ToolCalled reports one tool call.
type ToolCalled struct {
	Step       int
	Tool       string
	Arguments  string // a summary (clipped), never the whole content written
	Result     string // a summary (clipped)
	OK         bool
	Error      string
	DurationMS int64
}

// LLMCalled reports one model call.
type LLMCalled struct {
	Step         int
	Provider     string
	Model        string
	InputTokens  int64
	OutputTokens int64
	CostUSD      float64
	LatencyMS    int64
	Retries      int
}

// Observer receives the loop's reports as they happen; an error ends the loop (the run
// could not record what it did).
type Observer interface {
	ToolCalled(ctx context.Context, c ToolCalled) error
	LLMCalled(ctx context.Context, c LLMCalled) error
}

// Entry is one tool call of an earlier iteration, kept compactly for the next conversation.
type Entry struct {
	Iteration int    `json:"iteration"`
	Tool      string `json:"tool"`
	Arguments string `json:"arguments"`
	OK        bool   `json:"ok"`
	Result    string `json:"result"`
}

// Config is one run of the loop.
type Config struct {
	Provider llm.ToolProvider
	Prices   *Prices
	Limits   Limits
	// Dir is the work tree the tools act on.
	Dir   string
	RunCI CIRunner
	// Editable refuses a path (relative to Dir) the agent may not write or delete (the
	// repository's agent.editable); the model sees the refusal as the tool's error. nil:
	// every path of the work tree.
	Editable func(path string) error
	// Observer gets every tool and model call.
	Observer Observer
	// Iteration is the run's iteration (recorded in History).
	Iteration int
	// Spent is what earlier iterations of the run used (the token and cost limits are the run's).
	Spent Spent
}

// Result is what the loop did.
type Result struct {
	Change llm.Change
	// Spent is the run's total after this loop (Config.Spent included).
	Spent Spent
	Steps int
	// History is this loop's tool calls, compact.
	History []Entry
}

// SystemPrompt tells the model how to work.
const SystemPrompt = `You are ticketflow's coding agent. You change a git repository so that the ticket is done and the repository's CI command passes.
Work with the tools: find the relevant code with search and list_files, read only what you need with read_file (line ranges), change files with edit_file (exact replacement) or write_file (whole file), and check your change with run_ci.
Paths are relative to the repository root and never under .git. Keep the change small and focused.
When the change is done and CI passes, answer with one or two sentences saying what you changed and why, without calling a tool.`

// summary lengths of events and history.
const (
	argSummary    = 300
	resultSummary = 300
)

// Run runs the loop on task (the ticket, earlier history, CI feedback) until the model stops
// calling tools, or a limit, the context, the provider or the observer ends it.
func Run(ctx context.Context, cfg Config, task string) (Result, error) {
	res := Result{Spent: cfg.Spent}
	if cfg.Limits.MaxDuration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, cfg.Limits.MaxDuration, errDuration)
		defer cancel()
	}
	w := &workspace{dir: cfg.Dir, runCI: cfg.RunCI, editable: cfg.Editable, changed: map[string]bool{}}
	turns := []llm.Turn{{Role: "user", Text: task}}
	for {
		if err := cfg.checkBefore(res); err != nil {
			return res, err
		}
		res.Steps++
		resp, err := cfg.Provider.Chat(ctx, llm.ToolRequest{System: SystemPrompt, Turns: turns, Tools: Specs, MaxTokens: cfg.Limits.MaxResponseTokens})
		if err != nil {
			return res, cfg.ctxErr(ctx, err)
		}
		cost := cfg.Prices.Cost(resp.Model, resp.Usage)
		res.Spent.InputTokens += resp.Usage.InputTokens
		res.Spent.OutputTokens += resp.Usage.OutputTokens
		res.Spent.CostUSD += cost
		if err := cfg.Observer.LLMCalled(ctx, LLMCalled{Step: res.Steps, Provider: cfg.Provider.Vendor(), Model: resp.Model,
			InputTokens: resp.Usage.InputTokens, OutputTokens: resp.Usage.OutputTokens, CostUSD: cost,
			LatencyMS: resp.Latency.Milliseconds(), Retries: max(resp.Attempts-1, 0)}); err != nil {
			return res, err
		}
		if resp.Refusal != "" {
			return res, fmt.Errorf("%w: %s", llm.ErrRefused, resp.Refusal)
		}
		if err := cfg.checkAfter(res); err != nil {
			return res, err
		}
		if len(resp.Calls) == 0 {
			summary, err := w.finish(resp.Text)
			var te errTool
			if errors.As(err, &te) {
				// A whole-change answer with a path it may not change: nothing of it was
				// applied; the model is told and goes on.
				turns = append(turns, llm.Turn{Role: "assistant", Text: resp.Text},
					llm.Turn{Role: "user", Text: "Your change was not applied: " + te.msg})
				continue
			}
			if err != nil {
				return res, err
			}
			res.Change, err = w.change(clip(summary, 2000))
			return res, err
		}
		turns = append(turns, llm.Turn{Role: "assistant", Text: resp.Text, Calls: resp.Calls})
		results := make([]llm.ToolResult, 0, len(resp.Calls))
		for i, call := range resp.Calls {
			if call.ID == "" {
				call.ID = fmt.Sprintf("call-%d-%d", res.Steps, i)
				turns[len(turns)-1].Calls[i].ID = call.ID
			}
			start := time.Now()
			out, err := w.call(ctx, call.Name, call.Input)
			var te errTool
			if err != nil && !errors.As(err, &te) {
				return res, cfg.ctxErr(ctx, fmt.Errorf("tool %s: %w", call.Name, err))
			}
			rep := ToolCalled{Step: res.Steps, Tool: clip(call.Name, 80), Arguments: summarizeArgs(call.Input), OK: err == nil,
				DurationMS: time.Since(start).Milliseconds()}
			r := llm.ToolResult{CallID: call.ID, Content: clip(out, maxResultBytes)}
			if err != nil {
				rep.Error = clip(err.Error(), resultSummary)
				r.Content, r.IsError = err.Error(), true
			} else {
				rep.Result = summarizeResult(call.Name, out)
			}
			if err := cfg.Observer.ToolCalled(ctx, rep); err != nil {
				return res, err
			}
			entry := Entry{Iteration: cfg.Iteration, Tool: rep.Tool, Arguments: rep.Arguments, OK: rep.OK, Result: rep.Result}
			if !rep.OK {
				entry.Result = rep.Error
			}
			res.History = append(res.History, entry)
			results = append(results, r)
		}
		turns = append(turns, llm.Turn{Role: "user", Results: results})
	}
}

var errDuration = errors.New("agent wall-time limit")

func (cfg Config) ctxErr(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errDuration) {
		return &LimitError{Limit: "duration", Msg: fmt.Sprintf("the agent ran out of time (TICKETFLOW_AGENT_MAX_DURATION=%s)", cfg.Limits.MaxDuration)}
	}
	return err
}

func (cfg Config) checkBefore(res Result) error {
	if cfg.Limits.MaxSteps > 0 && res.Steps >= cfg.Limits.MaxSteps {
		return &LimitError{Limit: "steps", Msg: fmt.Sprintf("%d model calls without finishing (TICKETFLOW_AGENT_MAX_STEPS=%d)", res.Steps, cfg.Limits.MaxSteps)}
	}
	return cfg.checkAfter(res)
}

func (cfg Config) checkAfter(res Result) error {
	l := cfg.Limits
	switch {
	case l.MaxTokens > 0 && res.Spent.tokens() >= l.MaxTokens:
		return &LimitError{Limit: "tokens", Msg: fmt.Sprintf("the run used %d tokens (TICKETFLOW_AGENT_MAX_TOKENS=%d)", res.Spent.tokens(), l.MaxTokens)}
	case l.MaxCostUSD > 0 && res.Spent.CostUSD >= l.MaxCostUSD:
		return &LimitError{Limit: "cost", Msg: fmt.Sprintf("the run cost $%.4f (TICKETFLOW_AGENT_MAX_COST_USD=%g)", res.Spent.CostUSD, l.MaxCostUSD)}
	}
	return nil
}

// summarizeArgs is the arguments with long strings (a file's content) shortened, for events
// and the compact history.
func summarizeArgs(input json.RawMessage) string {
	var m map[string]any
	if json.Unmarshal(input, &m) != nil {
		return clip(string(input), argSummary)
	}
	for k, v := range m {
		if s, ok := v.(string); ok && len(s) > 80 {
			m[k] = fmt.Sprintf("%s… (%d bytes)", s[:60], len(s))
		}
	}
	b, _ := json.Marshal(m)
	return clip(string(b), argSummary)
}

// summarizeResult is the first lines of a result and how long it was.
func summarizeResult(tool, out string) string {
	lines := strings.Count(out, "\n") + 1
	first, _, _ := strings.Cut(out, "\n")
	if tool == ToolRunCI || lines == 1 {
		return clip(first, resultSummary)
	}
	return clip(fmt.Sprintf("%s … (%d lines)", first, lines), resultSummary)
}

// CompactHistory renders earlier tool calls for the next iteration's task, newest last, at
// most max entries (the oldest are dropped first).
func CompactHistory(entries []Entry, max int) string {
	if len(entries) == 0 {
		return ""
	}
	var b strings.Builder
	if len(entries) > max {
		fmt.Fprintf(&b, "(%d earlier tool calls not shown)\n", len(entries)-max)
		entries = entries[len(entries)-max:]
	}
	for _, e := range entries {
		verdict := "→"
		if !e.OK {
			verdict = "→ ERROR"
		}
		fmt.Fprintf(&b, "- iteration %d: %s %s %s %s\n", e.Iteration, e.Tool, e.Arguments, verdict, e.Result)
	}
	return b.String()
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 { // do not cut a UTF-8 sequence
		n--
	}
	return s[:n] + "…"
}
