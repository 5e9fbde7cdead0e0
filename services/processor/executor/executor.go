// Package executor does the work of the workflow's steps that touch the outside world: the
// simulated executor (simulated.go) and the real one (real.go: git, an LLM, the CI sandbox).
// The processor's engine (app) drives them; they append through the Run they are given.
package executor

import (
	"context"
	"encoding/json"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/services/processor/agent"
)

// Executor performs the steps of the workflow that touch the outside world. check_iterations,
// handle_ci_result and await_validation are workflow decisions the engine makes itself.
// Implementations must be safe to call again for the same step after a crash (the engine
// retries an interrupted step with the next attempt number).
type Executor interface {
	// Name is recorded on RunStarted ("simulated", "real").
	Name() string
	PrepareRepository(ctx context.Context, run *Run) error
	LoadConversation(ctx context.Context, run *Run) error
	CallLLM(ctx context.Context, run *Run) error
	CommitChanges(ctx context.Context, run *Run) error
	RunCI(ctx context.Context, run *Run) (CIOutcome, error)
	// Resume re-establishes what earlier steps left behind (work dir, conversation) when a
	// run restarts after a crash past load_conversation. It appends no events.
	Resume(ctx context.Context, run *Run) error
}

// CIOutcome is the result of one CI execution.
type CIOutcome struct {
	Passed     bool   `json:"passed"`
	ExitCode   int    `json:"exit_code"`
	DurationMS int64  `json:"duration_ms"`
	OutputTail string `json:"output_tail"`
}

// Ticket is what the processor knows of a ticket (from TicketCreated and later events).
type Ticket struct {
	ID              string
	Title           string
	Description     string
	RepositoryURL   string
	BaseBranch      string
	CICommand       string
	SimulateFailure string
	// Feedback holds review comments (ChangesRequested), oldest first.
	Feedback []string
	// EarlierRuns are the persisted states of the ticket's finished runs, oldest first: what
	// earlier LLM turns did and what CI said, for the conversation.
	EarlierRuns []RunState
}

// Run is the executor's view of the run in progress.
type Run struct {
	ID        string
	Ticket    Ticket
	Iteration int
	Attempt   int
	// Step is the step being executed.
	Step string
	// State is engine-persisted scratch space executors may use (e.g. branch name, last CI
	// output); it survives a processor restart.
	State RunState
	// Log appends a LogEmitted event for the current step. level is DEBUG, INFO, WARNING or ERROR.
	Log func(ctx context.Context, level, message string) error
	// Output appends one CI output line (stream "stdout" or "stderr") as a LogEmitted event.
	Output func(ctx context.Context, stream, line string) error
	// OutputLines appends several CI output lines, in order, with one write to the log.
	OutputLines func(ctx context.Context, lines []OutputLine) error
	// Emit appends another event of the run (e.g. LogTruncated).
	Emit func(ctx context.Context, payload events.Payload) error
}

// OutputLine is one CI output line.
type OutputLine struct {
	Stream string // "stdout" or "stderr"
	Text   string
}

// RunState is persisted with the run (processor_runs.state).
type RunState struct {
	Branch     string     `json:"branch,omitempty"`
	LastCI     *CIOutcome `json:"last_ci,omitempty"`
	WorkDir    string     `json:"work_dir,omitempty"`
	Commit     string     `json:"commit,omitempty"`
	LLMSummary string     `json:"llm_summary,omitempty"`
	// LLM is what the run's model calls used so far (every iteration): the token and cost
	// limits are the run's, and its terminal event reports the totals.
	LLM *agent.Spent `json:"llm,omitempty"`
	// Extra is free-form state for an executor.
	Extra json.RawMessage `json:"extra,omitempty"`
}
