package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/ticketflow/ticketflow/cmd/ticketflow/client"
	"github.com/ticketflow/ticketflow/libs/workflow"
)

// Exit codes of `run watch` (like `gh run watch --exit-status`).
const (
	exitOK        = 0 // COMPLETED (CI passed, awaiting validation) or VALIDATED
	exitFailed    = 1 // FAILED (or an error)
	exitCancelled = 2 // CANCELLED
)

// exitCode maps a terminal status to the watch's exit code.
func exitCode(status string) int {
	switch status {
	case "COMPLETED", "VALIDATED":
		return exitOK
	case "CANCELLED":
		return exitCancelled
	default:
		return exitFailed
	}
}

type stepState int

const (
	stepPending stepState = iota
	stepRunning
	stepDone
	stepFailed
)

// runView is the state of one watched run, updated message by message (apply) and drawn by
// render (terminal) or turned into lines by plainLine (not a terminal).
type runView struct {
	ticket    string
	status    string
	step      string
	progress  int
	message   string
	err       string
	iteration int
	maxIter   int
	steps     [8]stepState
	ci        string
	lastLogs  []string
	done      bool
	// What the run's LLM calls used so far (the sum of its llm_call messages).
	llmCalls      int
	llmIn, llmOut int64
	llmCost       float64
}

func newRunView(ticket string) *runView { return &runView{ticket: ticket, status: "WAITING"} }

// stepIndex is the position of a step in the workflow, -1 if unknown.
func stepIndex(name string) int {
	for i, s := range workflow.Steps {
		if s.Name == name {
			return i
		}
	}
	return -1
}

const keepLogs = 8

// apply folds one server message into the view.
func (v *runView) apply(m client.Message) {
	switch m.Type {
	case "run_started":
		v.iteration, v.maxIter = m.Iteration, m.MaxIterations
	case "status_update":
		v.status, v.message, v.err = m.Status, m.Message, m.Error
		if m.Progress != nil {
			v.progress = *m.Progress
		}
		i := stepIndex(m.Step)
		switch m.Status {
		case "PENDING":
			v.steps = [8]stepState{}
			v.ci, v.step = "", ""
		case "IN_PROGRESS":
			if i >= 0 {
				if cur := stepIndex(v.step); cur > i {
					// A new iteration goes around the loop again.
					v.steps = [8]stepState{}
				}
				for j := range i {
					if v.steps[j] != stepFailed {
						v.steps[j] = stepDone
					}
				}
				v.steps[i] = stepRunning
				v.step = m.Step
			}
		case "COMPLETED", "VALIDATED":
			for j := range v.steps {
				v.steps[j] = stepDone
			}
			v.progress, v.step = 100, workflow.AwaitValidation.Name
			v.done = true
		case "FAILED", "CANCELLED":
			if cur := stepIndex(v.step); cur >= 0 && v.steps[cur] == stepRunning {
				v.steps[cur] = stepFailed
			}
			v.done = true
		}
	case "step_completed":
		if i := stepIndex(m.Step); i >= 0 {
			if m.Outcome == "" || m.Outcome == "ok" || m.Outcome == "success" || m.Outcome == "succeeded" || m.Outcome == "passed" {
				v.steps[i] = stepDone
			} else {
				v.steps[i] = stepFailed
			}
		}
	case "ci_result":
		v.ci = ciLine(m)
	case "log", "agent_tool":
		v.lastLogs = append(v.lastLogs, logLine(m))
		if len(v.lastLogs) > keepLogs {
			v.lastLogs = v.lastLogs[len(v.lastLogs)-keepLogs:]
		}
	case "llm_call":
		v.llmCalls++
		v.llmIn += m.InputTokens
		v.llmOut += m.OutputTokens
		v.llmCost += m.CostUSD
	}
}

// toolLine describes an agent_tool message: ✓ read_file {"path":"a.go"} → a.go lines 1-9.
func toolLine(m client.Message) string {
	ok := m.OK != nil && *m.OK
	mark, outcome := "✓", m.Result
	if !ok {
		mark, outcome = "✗", m.Error
	}
	return fmt.Sprintf("%s %s %s → %s (%s)", mark, m.Tool, m.Arguments, outcome, (time.Duration(m.DurationMS) * time.Millisecond).String())
}

// llmLine describes an llm_call message.
func llmLine(m client.Message) string {
	s := fmt.Sprintf("%s %s: %d in / %d out tokens, $%.4f, %s", m.Provider, m.Model, m.InputTokens, m.OutputTokens, m.CostUSD,
		(time.Duration(m.LatencyMS) * time.Millisecond).String())
	if m.Retries > 0 {
		s += fmt.Sprintf(", %d retries", m.Retries)
	}
	return s
}

// ciLine describes a ci_result message.
func ciLine(m client.Message) string {
	verdict := "failed"
	if m.Passed != nil && *m.Passed {
		verdict = "passed"
	}
	exit := 0
	if m.ExitCode != nil {
		exit = *m.ExitCode
	}
	return fmt.Sprintf("CI %s (exit %d, %s, iteration %d)", verdict, exit, (time.Duration(m.DurationMS) * time.Millisecond).String(), m.Iteration)
}

// logLine is one log message (or agent tool call) as printed.
func logLine(m client.Message) string {
	if m.Type == "agent_tool" {
		return "TOOL  [call_llm] " + toolLine(m)
	}
	lvl := strings.ToUpper(m.Level)
	if lvl == "" {
		lvl = "INFO"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-5s ", lvl)
	if m.Step != "" {
		b.WriteString("[" + m.Step + "] ")
	}
	b.WriteString(m.Message)
	return b.String()
}

// progressBar draws p percent in width cells: [█████·····]  50%.
func progressBar(p, width int) string {
	p = max(0, min(100, p))
	if width < 1 {
		width = 1
	}
	full := p * width / 100
	return "[" + strings.Repeat("█", full) + strings.Repeat("·", width-full) + fmt.Sprintf("] %3d%%", p)
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func mark(s stepState, frame int) string {
	switch s {
	case stepDone:
		return "✓"
	case stepRunning:
		return spinner[frame%len(spinner)]
	case stepFailed:
		return "✗"
	}
	return "·"
}

// render is the live block of the terminal view (without the scrolled log lines above it).
func (v *runView) render(frame int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ticket %s  %s", v.ticket, v.status)
	if v.iteration > 0 {
		fmt.Fprintf(&b, "  iteration %d/%d", v.iteration, v.maxIter)
	}
	b.WriteString("\n")
	for i, s := range workflow.Steps {
		fmt.Fprintf(&b, "  %s %-19s %3d%%\n", mark(v.steps[i], frame), s.Name, s.Progress)
	}
	b.WriteString("  " + progressBar(v.progress, 40) + "\n")
	if v.ci != "" {
		b.WriteString("  " + v.ci + "\n")
	}
	if v.llmCalls > 0 {
		fmt.Fprintf(&b, "  LLM: %d call(s), %d in / %d out tokens, $%.4f\n", v.llmCalls, v.llmIn, v.llmOut, v.llmCost)
	}
	if v.message != "" {
		b.WriteString("  " + v.message + "\n")
	}
	if v.err != "" {
		b.WriteString("  error: " + v.err + "\n")
	}
	return b.String()
}

// plainLine is the line printed for m when stdout is not a terminal ("" for none).
func plainLine(m client.Message) string {
	switch m.Type {
	case "status_update":
		p := 0
		if m.Progress != nil {
			p = *m.Progress
		}
		s := fmt.Sprintf("status %s %d%%", m.Status, p)
		if m.Step != "" {
			s += " " + m.Step
		}
		if m.Message != "" {
			s += ": " + m.Message
		}
		if m.Error != "" {
			s += " (error: " + m.Error + ")"
		}
		return s
	case "log":
		return "log   " + logLine(m)
	case "agent_tool":
		return "tool  " + toolLine(m)
	case "llm_call":
		return "llm   " + llmLine(m)
	case "ci_result":
		return "ci    " + ciLine(m)
	case "run_started":
		return fmt.Sprintf("run   %s started (iteration %d/%d)", m.RunID, m.Iteration, m.MaxIterations)
	case "step_completed":
		return fmt.Sprintf("step  %s %s (%s)", m.Step, m.Outcome, (time.Duration(m.DurationMS) * time.Millisecond).String())
	case "history_unavailable":
		return "note  history unavailable: " + m.Message
	}
	return ""
}
