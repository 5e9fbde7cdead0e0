package events

import "slices"

// Type names an event. The constants below are the whole catalog.
type Type string

const (
	TicketCreated             Type = "TicketCreated"
	TicketProcessingRequested Type = "TicketProcessingRequested"
	RunStarted                Type = "RunStarted"
	StepStarted               Type = "StepStarted"
	StepCompleted             Type = "StepCompleted"
	LogEmitted                Type = "LogEmitted"
	LogTruncated              Type = "LogTruncated"
	CIResult                  Type = "CIResult"
	RunCompleted              Type = "RunCompleted"
	RunFailed                 Type = "RunFailed"
	RunCancelled              Type = "RunCancelled"
	RunRejected               Type = "RunRejected"
	CancelRequested           Type = "CancelRequested"
	ValidationApproved        Type = "ValidationApproved"
	ChangesRequested          Type = "ChangesRequested"
	RunResumed                Type = "RunResumed"
	AgentToolCalled           Type = "AgentToolCalled"
	LLMCallCompleted          Type = "LLMCallCompleted"
	RepositoryConfigLoaded    Type = "RepositoryConfigLoaded"
	PullRequestOpened         Type = "PullRequestOpened"
)

// Payload is the data of one event type.
type Payload interface{ EventType() Type }

type spec struct {
	version    int
	newPayload func() Payload
}

// catalog maps every known type to its current version. Bump a version only with a payload
// change that old readers cannot read; consumers skip versions newer than they know.
var catalog = map[Type]spec{
	TicketCreated:             {1, func() Payload { return new(TicketCreatedData) }},
	TicketProcessingRequested: {1, func() Payload { return new(ProcessingRequestedData) }},
	RunStarted:                {1, func() Payload { return new(RunStartedData) }},
	StepStarted:               {1, func() Payload { return new(StepStartedData) }},
	StepCompleted:             {1, func() Payload { return new(StepCompletedData) }},
	LogEmitted:                {1, func() Payload { return new(LogEmittedData) }},
	LogTruncated:              {1, func() Payload { return new(LogTruncatedData) }},
	CIResult:                  {1, func() Payload { return new(CIResultData) }},
	RunCompleted:              {1, func() Payload { return new(RunCompletedData) }},
	RunFailed:                 {1, func() Payload { return new(RunFailedData) }},
	RunCancelled:              {1, func() Payload { return new(RunCancelledData) }},
	RunRejected:               {1, func() Payload { return new(RunRejectedData) }},
	CancelRequested:           {1, func() Payload { return new(CancelRequestedData) }},
	ValidationApproved:        {1, func() Payload { return new(ValidationApprovedData) }},
	ChangesRequested:          {1, func() Payload { return new(ChangesRequestedData) }},
	RunResumed:                {1, func() Payload { return new(RunResumedData) }},
	AgentToolCalled:           {1, func() Payload { return new(AgentToolCalledData) }},
	LLMCallCompleted:          {1, func() Payload { return new(LLMCallCompletedData) }},
	RepositoryConfigLoaded:    {1, func() Payload { return new(RepositoryConfigLoadedData) }},
	PullRequestOpened:         {1, func() Payload { return new(PullRequestOpenedData) }},
}

// Types is every type of the catalog, sorted (the contract tests check each has a schema in
// api/asyncapi.yaml).
func Types() []Type {
	ts := make([]Type, 0, len(catalog))
	for t := range catalog {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

// CurrentVersion is the version this build writes for t (0 for unknown types).
func CurrentVersion(t Type) int { return catalog[t].version }

// Terminal reports whether t ends a run.
func Terminal(t Type) bool {
	return t == RunCompleted || t == RunFailed || t == RunCancelled || t == RunRejected
}

// TicketCreatedData: a ticket now exists. Owner is the JWT subject that created it.
type TicketCreatedData struct {
	Title         string `json:"title"`
	Description   string `json:"description"`
	RepositoryURL string `json:"repository_url"`
	BaseBranch    string `json:"base_branch"`
	CICommand     string `json:"ci_command"`
	Owner         string `json:"owner"`
	// SimulateFailure asks the simulated executor to fail CI: "" (never), "always", or
	// "once" (first iteration of each run only). Ignored by real executors.
	SimulateFailure string `json:"simulate_failure,omitempty"`
}

// ProcessingRequestedData: someone asked for a run. The run id is on the envelope.
type ProcessingRequestedData struct {
	RequestedBy string `json:"requested_by"`
	// Reason is "start" for a fresh request and "changes_requested" for the follow-up run
	// that a review comment starts.
	Reason string `json:"reason,omitempty"`
}

// RunStartedData: the processor accepted the run.
type RunStartedData struct {
	Iteration     int    `json:"iteration"`
	MaxIterations int    `json:"max_iterations"`
	Executor      string `json:"executor"`
}

// StepStartedData: a workflow step began. Attempt > 1 means the step was retried after a
// processor restart interrupted it.
type StepStartedData struct {
	Step      string `json:"step"`
	Progress  int    `json:"progress"`
	Message   string `json:"message"`
	Iteration int    `json:"iteration"`
	Attempt   int    `json:"attempt"`
}

// StepCompletedData: a step finished. Outcome is "ok" or "failed".
type StepCompletedData struct {
	Step       string `json:"step"`
	Progress   int    `json:"progress"`
	Iteration  int    `json:"iteration"`
	Attempt    int    `json:"attempt"`
	Outcome    string `json:"outcome"`
	DurationMS int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
}

// LogEmittedData: one line of a run's log.
type LogEmittedData struct {
	Level   string `json:"level"`
	Message string `json:"message"`
	Step    string `json:"step,omitempty"`
	Stream  string `json:"stream,omitempty"` // stdout or stderr for CI output
}

// LogTruncatedData: one CI execution wrote more than its output cap (lines or bytes as
// events). Its lines past the cap are not events; the full output is in the run artifact.
// Appended once, when the execution ends, so the counts are the execution's totals.
type LogTruncatedData struct {
	Step         string `json:"step,omitempty"`
	Iteration    int    `json:"iteration"`
	LinesTotal   int64  `json:"lines_total"`
	BytesTotal   int64  `json:"bytes_total"`
	LinesEmitted int64  `json:"lines_emitted"`
	// Artifact names the run artifact holding the full output (GET /api/runs/:run_id/artifacts/:name).
	Artifact string `json:"artifact"`
}

// CIResultData: the outcome of one CI execution.
type CIResultData struct {
	Iteration  int    `json:"iteration"`
	Passed     bool   `json:"passed"`
	ExitCode   int    `json:"exit_code"`
	DurationMS int64  `json:"duration_ms"`
	OutputTail string `json:"output_tail,omitempty"`
}

// RunCompletedData: CI passed; the run awaits human validation.
type RunCompletedData struct {
	Iteration int    `json:"iteration"`
	Branch    string `json:"branch,omitempty"`
	Message   string `json:"message"`
	// The run's LLM totals (sums of the LLMCallCompleted of its completed step attempts);
	// absent on runs that called no model.
	LLMInputTokens  int64   `json:"llm_input_tokens,omitempty"`
	LLMOutputTokens int64   `json:"llm_output_tokens,omitempty"`
	LLMCostUSD      float64 `json:"llm_cost_usd,omitempty"`
}

// AgentToolCalled: the coding agent of call_llm called one tool. Arguments and Result are
// summaries (a written file's content is shortened); Error is set when OK is false (a
// malformed call, a path outside the repository...), and the model was told.
type AgentToolCalledData struct {
	Iteration  int    `json:"iteration"`
	AgentStep  int    `json:"agent_step"` // the n-th model call of this call_llm (not a workflow step: that is call_llm)
	Tool       string `json:"tool"`
	Arguments  string `json:"arguments"`
	Result     string `json:"result,omitempty"`
	OK         bool   `json:"ok"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// LLMCallCompleted: one model call of the coding agent answered. CostUSD is from the
// processor's price table (TICKETFLOW_LLM_PRICES); Retries counts HTTP retries (429, 5xx).
type LLMCallCompletedData struct {
	Iteration    int     `json:"iteration"`
	AgentStep    int     `json:"agent_step"`
	Provider     string  `json:"provider"` // anthropic, openai or demo
	Model        string  `json:"model"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	CostUSD      float64 `json:"cost_usd"`
	LatencyMS    int64   `json:"latency_ms"`
	Retries      int     `json:"retries"`
}

// RepositoryConfigLoaded: prepare_repository read the repository's .ticketflow.yml (Source
// "file", with the raw file's SHA256 and size) or found none ("default"); Config is what the
// run uses from then on.
type RepositoryConfigLoadedData struct {
	Source    string           `json:"source"`
	SHA256    string           `json:"sha256,omitempty"`
	SizeBytes int              `json:"size_bytes,omitempty"`
	Config    RepositoryConfig `json:"config"`
}

// RepositoryConfig is a run's effective configuration: the operator's limits, lowered by
// the repository's; the CI command and whose it is (CICommandFrom: repository or ticket);
// the globs of the paths the agent may change (none: every path). Notes say what was refused
// (a ticket override the repository does not allow, a repository limit above the operator's).
type RepositoryConfig struct {
	CICommand            string   `json:"ci_command"`
	CICommandFrom        string   `json:"ci_command_from"`
	CICommandOverridable bool     `json:"ci_command_overridable"`
	CITimeoutMS          int64    `json:"ci_timeout_ms"`
	Editable             []string `json:"editable,omitempty"`
	MaxSteps             int      `json:"max_steps"`
	MaxTokens            int64    `json:"max_tokens"`
	MaxCostUSD           float64  `json:"max_cost_usd"`
	MaxDurationMS        int64    `json:"max_duration_ms"`
	Notes                []string `json:"notes,omitempty"`
}

// PullRequestOpenedData: the run has its pull request on the repository's forge (libs/forge):
// opened as a draft after the run's first push, or the ticket's open one found again (Reused:
// an earlier run's, or the one an interrupted attempt opened). At most one per run, except
// when a processor crashed between appending it and recording it (consumers keep the last).
type PullRequestOpenedData struct {
	URL    string `json:"url"`
	Number int    `json:"number"`
	Forge  string `json:"forge"` // github, gitlab or gitea
	Branch string `json:"branch,omitempty"`
	Reused bool   `json:"reused,omitempty"`
}

// RunFailedData: the run stopped on an error or on CI failing after MAX_ITERATIONS.
type RunFailedData struct {
	Step    string `json:"step,omitempty"`
	Message string `json:"message"`
	Error   string `json:"error"`
	// The run's LLM totals (sums of the LLMCallCompleted of its completed step attempts);
	// absent on runs that called no model.
	LLMInputTokens  int64   `json:"llm_input_tokens,omitempty"`
	LLMOutputTokens int64   `json:"llm_output_tokens,omitempty"`
	LLMCostUSD      float64 `json:"llm_cost_usd,omitempty"`
}

// RunCancelledData: the run was cancelled by a user or because the iteration budget is spent.
type RunCancelledData struct {
	Step    string `json:"step,omitempty"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
}

// RunRejectedData: the processor refused a request (e.g. another run of the ticket is active).
type RunRejectedData struct {
	Reason      string `json:"reason"`
	ActiveRunID string `json:"active_run_id,omitempty"`
}

// CancelRequestedData: a user asked to cancel the ticket's active run (run id on the envelope).
type CancelRequestedData struct {
	RequestedBy string `json:"requested_by"`
}

// ValidationApprovedData: a human approved a completed run.
type ValidationApprovedData struct {
	ApprovedBy string `json:"approved_by"`
	Comment    string `json:"comment,omitempty"`
}

// ChangesRequestedData: a human asked for changes; the comment enters the conversation.
type ChangesRequestedData struct {
	RequestedBy string `json:"requested_by"`
	Comment     string `json:"comment"`
	// NextRunID is the follow-up run this request starts.
	NextRunID string `json:"next_run_id"`
}

// RunResumedData: a processor took up a run that had already begun — after a restart, or
// taking it over from another processor whose lease expired (the previous owner is fenced
// at the broker from then on). Owner names the processor that drives the run from here; the
// next StepStarted carries the retried step's attempt number.
type RunResumedData struct {
	Owner         string `json:"owner"`
	PreviousOwner string `json:"previous_owner,omitempty"`
	Step          string `json:"step,omitempty"`
	Attempt       int    `json:"attempt,omitempty"`
	Iteration     int    `json:"iteration,omitempty"`
}

func (*TicketCreatedData) EventType() Type          { return TicketCreated }
func (*ProcessingRequestedData) EventType() Type    { return TicketProcessingRequested }
func (*RunStartedData) EventType() Type             { return RunStarted }
func (*StepStartedData) EventType() Type            { return StepStarted }
func (*StepCompletedData) EventType() Type          { return StepCompleted }
func (*LogEmittedData) EventType() Type             { return LogEmitted }
func (*LogTruncatedData) EventType() Type           { return LogTruncated }
func (*CIResultData) EventType() Type               { return CIResult }
func (*RunCompletedData) EventType() Type           { return RunCompleted }
func (*RunFailedData) EventType() Type              { return RunFailed }
func (*RunCancelledData) EventType() Type           { return RunCancelled }
func (*RunRejectedData) EventType() Type            { return RunRejected }
func (*CancelRequestedData) EventType() Type        { return CancelRequested }
func (*ValidationApprovedData) EventType() Type     { return ValidationApproved }
func (*ChangesRequestedData) EventType() Type       { return ChangesRequested }
func (*RunResumedData) EventType() Type             { return RunResumed }
func (*AgentToolCalledData) EventType() Type        { return AgentToolCalled }
func (*LLMCallCompletedData) EventType() Type       { return LLMCallCompleted }
func (*RepositoryConfigLoadedData) EventType() Type { return RepositoryConfigLoaded }
func (*PullRequestOpenedData) EventType() Type      { return PullRequestOpened }
