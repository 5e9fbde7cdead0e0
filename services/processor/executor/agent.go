package executor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/workflow"
	"github.com/ticketflow/ticketflow/services/processor/agent"
	"github.com/ticketflow/ticketflow/services/processor/ci"
	"github.com/ticketflow/ticketflow/services/processor/llm"
	"github.com/ticketflow/ticketflow/services/processor/repoconfig"
)

// Defaults of the agent's limits, for a RealConfig built in code (zero fields).
const (
	defAgentMaxSteps          = 40
	defAgentMaxTokens         = 2_000_000
	defAgentMaxCostUSD        = 5
	defAgentMaxResponseTokens = 8192
	// historyEntries bounds the earlier tool calls put in the next iteration's task.
	historyEntries = 60
	// taskFileList is how many repository paths the task lists (the rest is one tool call away).
	taskFileList = 100
)

// llmMetrics are the cost counters (ticketflow_llm_*); nil-safe.
type llmMetrics struct {
	tokens *prometheus.CounterVec
	cost   *prometheus.CounterVec
}

func newLLMMetrics(reg prometheus.Registerer) *llmMetrics {
	m := &llmMetrics{
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ticketflow_llm_tokens_total",
			Help: "Tokens of the coding agent's LLM calls, by provider, model and direction (input or output)."}, []string{"provider", "model", "direction"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ticketflow_llm_cost_usd_total",
			Help: "Cost in USD of the coding agent's LLM calls (TICKETFLOW_LLM_PRICES), by provider and model."}, []string{"provider", "model"}),
	}
	if reg != nil {
		reg.MustRegister(m.tokens, m.cost)
	}
	return m
}

func (m *llmMetrics) observe(c agent.LLMCalled) {
	m.tokens.WithLabelValues(c.Provider, c.Model, "input").Add(float64(c.InputTokens))
	m.tokens.WithLabelValues(c.Provider, c.Model, "output").Add(float64(c.OutputTokens))
	m.cost.WithLabelValues(c.Provider, c.Model).Add(c.CostUSD)
}

// agentObserver appends the loop's reports as events of the run (AgentToolCalled,
// LLMCallCompleted), through the same transactional appender as its log lines: a retried
// call_llm appends its own, under its new attempt, like any retried step.
type agentObserver struct {
	x   *Real
	run *Run
}

func (o agentObserver) ToolCalled(ctx context.Context, c agent.ToolCalled) error {
	red := o.x.red.String
	return o.run.Emit(ctx, &events.AgentToolCalledData{Iteration: o.run.Iteration, AgentStep: c.Step, Tool: red(c.Tool),
		Arguments: red(c.Arguments), Result: red(c.Result), OK: c.OK, Error: red(c.Error), DurationMS: c.DurationMS})
}

func (o agentObserver) LLMCalled(ctx context.Context, c agent.LLMCalled) error {
	o.x.metrics.observe(c)
	llmSpan(ctx, c)
	return o.run.Emit(ctx, &events.LLMCallCompletedData{Iteration: o.run.Iteration, AgentStep: c.Step, Provider: c.Provider, Model: c.Model,
		InputTokens: c.InputTokens, OutputTokens: c.OutputTokens, CostUSD: c.CostUSD, LatencyMS: c.LatencyMS, Retries: c.Retries})
}

// agentLimits are the run's (the operator's, lowered by the repository's configuration).
func (x *Real) agentLimits(eff repoconfig.Effective) agent.Limits {
	return agent.Limits{MaxSteps: eff.MaxSteps, MaxTokens: eff.MaxTokens, MaxDuration: eff.MaxDuration,
		MaxCostUSD: eff.MaxCostUSD, MaxResponseTokens: x.cfg.AgentMaxResponseTokens}
}

// CallLLM runs the coding agent on the work dir (reset to the iteration's parent commit): the
// model explores and edits the repository through tools until it is done or a limit stops
// it. The resulting change (whole files, read back from the work tree) is kept in the run
// state for commit_changes, with the iteration's tool history for the next conversation.
func (x *Real) CallLLM(ctx context.Context, run *Run) error {
	s, err := loadState(run)
	if err != nil {
		return err
	}
	dir := x.workDir(run.Ticket.ID)
	if err := x.git.ResetTo(ctx, dir, parent(run, s)); err != nil {
		return x.red.Error(err)
	}
	task, err := x.agentTask(ctx, run, s)
	if err != nil {
		return err
	}
	eff := x.runConfig(run, s)
	if _, ok := x.llm.(llm.Demo); ok {
		err = x.logf(ctx, run, "WARNING", workflow.LogDemoLLM, llm.DemoFile)
	} else {
		l := x.agentLimits(eff)
		err = x.logf(ctx, run, "INFO", workflow.LogAgentStarted, x.llm.Name(), l.MaxSteps, l.MaxTokens, l.MaxDuration, l.MaxCostUSD)
	}
	if err != nil {
		return err
	}
	spent := agent.Spent{}
	if run.State.LLM != nil {
		spent = *run.State.LLM
	}
	res, runErr := agent.Run(ctx, agent.Config{Provider: x.llm, Prices: x.prices, Limits: x.agentLimits(eff), Dir: dir,
		RunCI: x.agentCI(run, eff, dir), Editable: eff.CheckEditable, Observer: agentObserver{x: x, run: run}, Iteration: run.Iteration, Spent: spent}, task)
	// What was spent is the run's even when the loop failed: the terminal event reports it.
	if res.Spent != spent {
		run.State.LLM = &res.Spent
		if err := x.logf(ctx, run, "INFO", workflow.LogAgentUsage, res.Spent.InputTokens-spent.InputTokens,
			res.Spent.OutputTokens-spent.OutputTokens, res.Spent.CostUSD-spent.CostUSD, res.Spent.CostUSD); err != nil {
			return err
		}
	}
	t := s.turn(run.Iteration)
	t.Tools = res.History
	if runErr != nil {
		if err := saveState(run, s); err != nil {
			return err
		}
		return x.red.Error(runErr)
	}
	change := res.Change
	s.Pending = &change
	run.State.LLMSummary = change.Summary
	if err := saveState(run, s); err != nil {
		return err
	}
	paths := make([]string, len(change.Edits))
	for i, e := range change.Edits {
		paths[i] = e.Path
	}
	return x.logf(ctx, run, "INFO", workflow.LogChangeApplied, change.Summary, len(paths), strings.Join(paths, ", "))
}

// agentCI is the run_ci tool: the run's CI command run as the run_ci step runs it (runCI:
// same sandbox, limits, per-execution caps and span), and its tail goes to the model.
func (x *Real) agentCI(run *Run, eff repoconfig.Effective, dir string) agent.CIRunner {
	return func(ctx context.Context) (agent.CIReport, error) {
		if err := x.killStaleCI(ctx, run, dir); err != nil {
			return agent.CIReport{}, err
		}
		if err := x.logf(ctx, run, "INFO", workflow.LogCICommand, eff.CICommand); err != nil {
			return agent.CIReport{}, err
		}
		res, err := x.runCI(ctx, run, eff, dir, newCICapture(int64(x.cfg.CIMaxLogLines), int64(x.cfg.CIMaxLogBytes), 0))
		if err != nil {
			return agent.CIReport{}, err
		}
		// The sandbox may have handed the tree to its own uid: take it back for the next edit.
		if err := ci.Reclaim(dir); err != nil {
			return agent.CIReport{}, err
		}
		return agent.CIReport{Passed: res.Passed(), ExitCode: res.ExitCode, Tail: x.red.String(res.Tail)}, nil
	}
}

// agentTask is the first message of the loop: the ticket, the shape of the repository (a
// few paths; the agent reads the rest with its tools), what earlier runs and iterations did
// (their tool calls compactly) and how CI or the reviewers answered.
func (x *Real) agentTask(ctx context.Context, run *Run, s realState) (string, error) {
	t := run.Ticket
	files, err := x.git.Files(ctx, x.workDir(t.ID))
	if err != nil {
		return "", x.red.Error(err)
	}
	eff := x.runConfig(run, s)
	var b strings.Builder
	fmt.Fprintf(&b, "Ticket: %s\n\n%s\n\nCI command (run with sh -c at the repository root): %s\nIteration: %d\n\n", t.Title, t.Description, eff.CICommand, run.Iteration)
	if len(eff.Editable) > 0 {
		fmt.Fprintf(&b, "The repository's %s lets you change only the paths matching these globs: %s\n\n", repoconfig.FileName, strings.Join(eff.Editable, ", "))
	}
	fmt.Fprintf(&b, "The repository has %d files; the first ones:\n", len(files))
	for i, f := range files {
		if i == taskFileList {
			fmt.Fprintf(&b, "... and %d more (use list_files and search)\n", len(files)-i)
			break
		}
		b.WriteString(f + "\n")
	}
	var earlier []agent.Entry
	for _, st := range t.EarlierRuns {
		var rs realState
		if unmarshalState(st, &rs) {
			for _, tr := range rs.Turns {
				earlier = append(earlier, tr.Tools...)
			}
		}
	}
	if history := earlierTurns(t.EarlierRuns); history != "" {
		b.WriteString("\nEarlier runs on this ticket (oldest first):\n" + history)
	}
	if h := agent.CompactHistory(earlier, historyEntries/2); h != "" {
		b.WriteString("\nTool calls of the last earlier runs (compact):\n" + h)
	}
	if len(t.Feedback) > 0 {
		b.WriteString("\nReview comments on the earlier result (oldest first):\n")
		for _, c := range t.Feedback {
			b.WriteString("- " + c + "\n")
		}
	}
	var thisRun []agent.Entry
	for _, tr := range s.Turns {
		if tr.Iteration >= run.Iteration {
			continue
		}
		thisRun = append(thisRun, tr.Tools...)
		if tr.CI == nil || tr.CI.Passed {
			continue
		}
		tail := tr.CI.OutputTail
		if len(tail) > promptCITail {
			tail = tail[len(tail)-promptCITail:]
		}
		fmt.Fprintf(&b, "\nIteration %d changed: %s\nCI failed after that change (exit code %d). Last output lines:\n%s\n", tr.Iteration, tr.Summary, tr.CI.ExitCode, tail)
	}
	if h := agent.CompactHistory(thisRun, historyEntries); h != "" {
		b.WriteString("\nYour tool calls in the earlier iterations of this run (compact; the work tree holds their committed result):\n" + h)
	}
	if len(thisRun) > 0 || len(t.Feedback) > 0 {
		b.WriteString("\nFix what failed or what the reviewers asked for.\n")
	}
	return b.String(), nil
}

// agentDefaults fills the agent settings a RealConfig built in code leaves zero, and refuses
// negative ones.
func (c *RealConfig) agentDefaults() error {
	if c.AgentMaxSteps < 0 || c.AgentMaxTokens < 0 || c.AgentMaxDuration < 0 || c.AgentMaxCostUSD < 0 || c.AgentMaxResponseTokens < 0 {
		return fmt.Errorf("TICKETFLOW_AGENT_*: limits must not be negative")
	}
	if c.AgentMaxSteps == 0 {
		c.AgentMaxSteps = defAgentMaxSteps
	}
	if c.AgentMaxTokens == 0 {
		c.AgentMaxTokens = defAgentMaxTokens
	}
	if c.AgentMaxDuration == 0 {
		c.AgentMaxDuration = 20 * time.Minute
	}
	if c.AgentMaxCostUSD == 0 {
		c.AgentMaxCostUSD = defAgentMaxCostUSD
	}
	if c.AgentMaxResponseTokens == 0 {
		c.AgentMaxResponseTokens = defAgentMaxResponseTokens
	}
	if c.LLMPrices == "" {
		c.LLMPrices = agent.DefaultPrices
	}
	return nil
}
