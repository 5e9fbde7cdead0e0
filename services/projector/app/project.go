package app

import (
	"context"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/workflow"
)

// Batch is one partition's transaction: the offset row it holds locked, the audit trail
// and the changes an event makes to the projections (adapters holds their SQL). The changes
// may reach the database only at SetNextOffset or the end of the batch (adapters pipelines
// them: one round trip per batch), so their errors can surface there.
type Batch interface {
	// NextOffset is the partition's stored next offset (-1 when none is stored).
	NextOffset(ctx context.Context) (int64, error)
	SetNextOffset(ctx context.Context, next int64, topicID string) error
	// Record appends the events to ticket_events, in order; fresh[i] is false when rows[i]'s
	// id was recorded before (or earlier in rows).
	Record(ctx context.Context, topicID string, rows []AuditRow) (fresh []bool, err error)

	CreateTicket(ctx context.Context, ev events.Event, d *events.TicketCreatedData) error
	// RequestRun adds the run as PENDING with message.
	// traceID is the trace the request's record belongs to ("" when it carries none).
	RequestRun(ctx context.Context, ev events.Event, d *events.ProcessingRequestedData, message, traceID string) error
	// TakeOverTicket makes the run the ticket's current one, unless the ticket has an active
	// run (PENDING or IN_PROGRESS).
	TakeOverTicket(ctx context.Context, ev events.Event, status, message string) error
	StartRun(ctx context.Context, ev events.Event, d *events.RunStartedData) error
	StartStep(ctx context.Context, ev events.Event, d *events.StepStartedData) error
	CompleteStep(ctx context.Context, ev events.Event, d *events.StepCompletedData) error
	FinishRun(ctx context.Context, ev events.Event, f Finish) error
	RejectRun(ctx context.Context, ev events.Event, reason, message string) error
	ValidateRun(ctx context.Context, ev events.Event) error
	// RecordLLMCall stores one model call and adds it to its run's totals.
	RecordLLMCall(ctx context.Context, ev events.Event, d *events.LLMCallCompletedData) error
	// CountToolCall adds one agent tool call to its run's count.
	CountToolCall(ctx context.Context, ev events.Event) error
	// SetRepositoryConfig records the run's effective repository configuration (the last
	// one read, when a retried prepare_repository read it again).
	SetRepositoryConfig(ctx context.Context, ev events.Event, d *events.RepositoryConfigLoadedData) error
	// SetPullRequest records the run's pull request on the run and its ticket.
	SetPullRequest(ctx context.Context, ev events.Event, d *events.PullRequestOpenedData) error
	// UpdateTicket applies a status update to the ticket when ev's run is its current one.
	UpdateTicket(ctx context.Context, ev events.Event, u workflow.Update) error
}

// AuditRow is one record for the audit trail: its envelope and the record as stored.
type AuditRow struct {
	Event   events.Event
	Value   []byte
	Headers []byte
}

// project applies an event's effect on the projections.
// traceID is the trace of ev's record ("" when none).
func project(ctx context.Context, b Batch, ev events.Event, payload events.Payload, traceID string) error {
	switch d := payload.(type) {
	case *events.TicketCreatedData:
		return b.CreateTicket(ctx, ev, d)
	case *events.ProcessingRequestedData:
		if err := b.RequestRun(ctx, ev, d, workflow.MessagePending, traceID); err != nil {
			return err
		}
		// A request while a run is active will be rejected by the processor: it must not
		// take over the ticket's visible state.
		u, _ := workflow.StatusUpdate(ev.Envelope, payload)
		return b.TakeOverTicket(ctx, ev, string(u.Status), u.Message)
	case *events.RunStartedData:
		return b.StartRun(ctx, ev, d)
	case *events.StepStartedData:
		if err := b.StartStep(ctx, ev, d); err != nil {
			return err
		}
		return updateTicket(ctx, b, ev, payload)
	case *events.StepCompletedData:
		return b.CompleteStep(ctx, ev, d)
	case *events.RunCompletedData:
		return finishRun(ctx, b, ev, payload, Finish{Status: string(workflow.Completed), Message: d.Message, Branch: d.Branch})
	case *events.RunFailedData:
		return finishRun(ctx, b, ev, payload, Finish{Status: string(workflow.Failed), Message: d.Message, Error: d.Error})
	case *events.RunCancelledData:
		return finishRun(ctx, b, ev, payload, Finish{Status: string(workflow.Cancelled), Message: d.Message, Error: d.Reason})
	case *events.LLMCallCompletedData:
		return b.RecordLLMCall(ctx, ev, d)
	case *events.AgentToolCalledData:
		return b.CountToolCall(ctx, ev)
	case *events.RepositoryConfigLoadedData:
		return b.SetRepositoryConfig(ctx, ev, d)
	case *events.PullRequestOpenedData:
		return b.SetPullRequest(ctx, ev, d)
	case *events.RunRejectedData:
		return b.RejectRun(ctx, ev, d.Reason, workflow.MessageRejected)
	case *events.ValidationApprovedData:
		if err := b.ValidateRun(ctx, ev); err != nil {
			return err
		}
		return updateTicket(ctx, b, ev, payload)
	}
	return nil // LogEmitted, CIResult, CancelRequested, ChangesRequested: audit trail only
}

func finishRun(ctx context.Context, b Batch, ev events.Event, payload events.Payload, f Finish) error {
	if err := b.FinishRun(ctx, ev, f); err != nil {
		return err
	}
	return updateTicket(ctx, b, ev, payload)
}

// updateTicket applies the brief's status update for events of the ticket's current run.
func updateTicket(ctx context.Context, b Batch, ev events.Event, payload events.Payload) error {
	u, ok := workflow.StatusUpdate(ev.Envelope, payload)
	if !ok {
		return nil
	}
	return b.UpdateTicket(ctx, ev, u)
}
