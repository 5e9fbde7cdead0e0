package app

import (
	"context"
	"errors"
	"time"

	"github.com/ticketflow/ticketflow/libs/events"
)

// What the application drives, implemented by package adapters: the projector's tables and
// the idempotency keys in PostgreSQL (Store, Session), the Kafka event log (EventLog).

// Errors the adapters return.
var (
	// ErrNotFound: no such row.
	ErrNotFound = errors.New("not found")
	// ErrBusy: no database connection could be had within the acquire timeout.
	ErrBusy = errors.New("database busy: no connection available")
)

// Store reads the projection; every call runs on a connection of its own.
type Store interface {
	// Session takes the one connection a write holds from start to answer.
	Session(ctx context.Context) (Session, error)
	Ticket(ctx context.Context, id string) (Ticket, error)
	// Tickets lists tickets newest first; "" owner or status means any.
	Tickets(ctx context.Context, owner, status string, limit int) ([]Ticket, error)
	Runs(ctx context.Context, ticketID string) ([]Run, error)
	// RunTicket is the ticket of a projected run (ErrNotFound if none).
	RunTicket(ctx context.Context, runID string) (string, error)
	// Events pages through the audit trail of a ticket (or of one run, runID != "") in
	// append order, strictly after (afterPartition, afterOffset).
	Events(ctx context.Context, ticketID, runID string, afterPartition int32, afterOffset int64, limit int) ([]StoredEvent, error)
	StepStats(ctx context.Context, since, until time.Time) ([]StepStats, error)
	LLMStats(ctx context.Context, since, until time.Time) ([]LLMUsage, []LLMUsageDay, error)
	Artifacts(ctx context.Context, runID string) ([]Artifact, error)
	// ArtifactContent is one artifact's content (ErrNotFound if none).
	ArtifactContent(ctx context.Context, runID, name string) ([]byte, error)
	// ArtifactTicket is the ticket of a run known only by its artifacts (ErrNotFound if none).
	ArtifactTicket(ctx context.Context, runID string) (string, error)
}

// Session is one database connection held for a whole write: its advisory locks and the
// reads they guard run on it (see adapters.Session).
type Session interface {
	// Ticket reads a ticket on this connection (ErrNotFound if none).
	Ticket(ctx context.Context, id string) (Ticket, error)
	LockTicket(ctx context.Context, ticketID string) error
	// TryLockKey takes the key's lock if no live request holds it.
	TryLockKey(ctx context.Context, k IdemKey) (bool, error)
	// LoadClaim is the key's row, nil if none.
	LoadClaim(ctx context.Context, k IdemKey) (*Claim, error)
	// SavePlan records, durably and before the append, what this attempt will append and
	// answer, and where in the log to look for it.
	SavePlan(ctx context.Context, k IdemKey, ticketID string, eventIDs []string, partition int32, offset int64, status int, body []byte) error
	// Answer stores the key's final answer; a retry replays it.
	Answer(ctx context.Context, k IdemKey, status int, body []byte) error
	// Forget frees the key after a failure that appended nothing.
	Forget(ctx context.Context, k IdemKey) error
	// WaitProjected waits up to max until the projector has applied the record at pos.
	WaitProjected(ctx context.Context, pos events.Position, max time.Duration) bool
	// Alive is false once the connection was dropped (Kill).
	Alive() bool
	// Kill drops the connection without unlocking, as a dying process would.
	Kill()
	// Release unlocks and returns the connection.
	Release()
}

// EventLog is the Kafka event log.
type EventLog interface {
	// Append appends with the shared idempotent producer (writes without a key).
	Append(ctx context.Context, envs ...events.Envelope) ([]events.Position, error)
	// Transactional opens the producer of one transactional id, fencing earlier ones.
	Transactional(ctx context.Context, transactionalID string) (Transaction, error)
	// Position is the partition a ticket's events go to and that partition's end offset.
	Position(ctx context.Context, ticketID string) (int32, int64, error)
	// Contains reports whether any of ids is committed in partition at or after from.
	Contains(ctx context.Context, partition int32, from int64, ids []string) (bool, error)
}

// Transaction appends under one transactional id (kafka.TxnProducer).
type Transaction interface {
	Append(ctx context.Context, envs ...events.Envelope) ([]events.Position, error)
	Close()
}

// IdemKey is a request's Idempotency-Key, scoped to its subject, with the hash of what the
// request asks (the same key for another request is refused).
type IdemKey struct {
	Subject, Key, Hash string
}

// Claim is an idempotency_keys row.
type Claim struct {
	Hash      string
	Status    *int   // set once answered
	Response  []byte // the answer, once answered
	Planned   bool   // the row records what the request appends (pending rows of older versions do not)
	EventIDs  []string
	Partition int32
	Offset    int64
	PlannedSt int
	PlannedRe []byte
}

// Ticket is the API's ticket representation (a row of the tickets projection).
type Ticket struct {
	ID            string    `json:"id"`
	Owner         string    `json:"owner"`
	Title         string    `json:"title"`
	Description   string    `json:"description"`
	RepositoryURL string    `json:"repository_url"`
	BaseBranch    string    `json:"base_branch"`
	CICommand     string    `json:"ci_command"`
	Status        string    `json:"status"`
	Step          string    `json:"step"`
	Progress      int       `json:"progress"`
	Message       string    `json:"message"`
	Error         string    `json:"error"`
	Iteration     int       `json:"iteration"`
	CurrentRunID  string    `json:"current_run_id"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	// The ticket's LLM totals: the sums over its runs.
	LLMInputTokens  int64   `json:"llm_input_tokens"`
	LLMOutputTokens int64   `json:"llm_output_tokens"`
	LLMCostUSD      float64 `json:"llm_cost_usd"`
	// PullRequestURL is the ticket's pull request on its forge ("" when none).
	PullRequestURL string `json:"pull_request_url"`
}

// Run is one processing run of a ticket.
type Run struct {
	ID          string     `json:"id"`
	TicketID    string     `json:"ticket_id"`
	Status      string     `json:"status"`
	Step        string     `json:"step"`
	Progress    int        `json:"progress"`
	Iteration   int        `json:"iteration"`
	Reason      string     `json:"reason"`
	RequestedBy string     `json:"requested_by"`
	Message     string     `json:"message"`
	Error       string     `json:"error"`
	Branch      string     `json:"branch"`
	RequestedAt time.Time  `json:"requested_at"`
	StartedAt   *time.Time `json:"started_at"`
	FinishedAt  *time.Time `json:"finished_at"`
	// What the run's coding agent did and cost (sums of its LLMCallCompleted and
	// AgentToolCalled events).
	LLMCalls        int     `json:"llm_calls"`
	LLMInputTokens  int64   `json:"llm_input_tokens"`
	LLMOutputTokens int64   `json:"llm_output_tokens"`
	LLMCostUSD      float64 `json:"llm_cost_usd"`
	ToolCalls       int     `json:"tool_calls"`
	// TraceID is the W3C trace id of the run's start request ("" when it carried none).
	TraceID string `json:"trace_id"`
	// RepositoryConfig is the configuration the run uses (its RepositoryConfigLoaded); nil
	// until prepare_repository read it.
	RepositoryConfig *events.RepositoryConfigLoadedData `json:"repository_config"`
	// PullRequestURL is the run's pull request on the forge ("" when none).
	PullRequestURL string `json:"pull_request_url"`
}

// StoredEvent is one audit-trail row.
type StoredEvent struct {
	Partition int32
	Offset    int64
	Envelope  []byte
}

// StepStats is the latency summary of one step over a window.
type StepStats struct {
	Step        string  `json:"step"`
	Count       int64   `json:"count"`
	P50MS       float64 `json:"p50_ms"`
	P95MS       float64 `json:"p95_ms"`
	P99MS       float64 `json:"p99_ms"`
	MaxMS       float64 `json:"max_ms"`
	FailureRate float64 `json:"failure_rate"`
}

// LLMTotals is what one provider's model was used for: its calls, their tokens and cost.
type LLMTotals struct {
	Provider     string  `json:"provider"`
	Model        string  `json:"model"`
	Calls        int64   `json:"calls"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	CostUSD      float64 `json:"cost_usd"`
}

// LLMUsage is what one provider's model was used for over a window.
type LLMUsage struct {
	LLMTotals
	Retries      int64   `json:"retries"`
	P50LatencyMS float64 `json:"p50_latency_ms"`
}

// LLMUsageDay is one model's use on one UTC day.
type LLMUsageDay struct {
	Day string `json:"day"`
	LLMTotals
}

// Artifact is one run artifact as listed.
type Artifact struct {
	Name      string    `json:"name"`
	SizeBytes int64     `json:"size_bytes"`
	Lines     int64     `json:"lines"`
	CreatedAt time.Time `json:"created_at"`
}
