package app

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/workflow"
	"github.com/twmb/franz-go/pkg/kgo"
)

// apply writes one record: verbatim into ticket_events, then its effect on the projections.
// A record whose envelope cannot be read is skipped (logged and counted): it has no ticket to
// belong to, and a poison record must not stop the projection.
func (p *Projector) apply(ctx context.Context, tx pgx.Tx, rec *kgo.Record) error {
	ev, err := kafka.Event(rec)
	if err != nil {
		p.log.Warn("skipping unreadable record", "err", err)
		p.metrics.skipped.WithLabelValues("malformed").Inc()
		return nil
	}
	headers := map[string]string{}
	for _, h := range rec.Headers {
		headers[h.Key] = string(h.Value)
	}
	hdrJSON, _ := json.Marshal(headers)
	tag, err := tx.Exec(ctx, `INSERT INTO ticket_events (event_id, ticket_id, run_id, type, version, occurred_at, actor,
			topic_id, partition, "offset", envelope, headers)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING`,
		ev.ID, ev.TicketID, ev.RunID, string(ev.Type), ev.Version, ev.OccurredAt, ev.Actor,
		p.topicID, ev.Partition, ev.Offset, string(rec.Value), hdrJSON)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		// Same event id seen before (a producer retry after a crash): its effect is applied.
		p.metrics.skipped.WithLabelValues("duplicate_event_id").Inc()
		return nil
	}
	payload, err := ev.Decode()
	if errors.Is(err, events.ErrUnknown) {
		p.metrics.skipped.WithLabelValues("unknown_type").Inc()
		return nil // kept verbatim in the audit trail, no projection effect
	}
	if err != nil {
		p.log.Warn("event payload unreadable; kept in audit trail only", "event_id", ev.ID, "err", err)
		p.metrics.skipped.WithLabelValues("bad_payload").Inc()
		return nil
	}
	if err := p.project(ctx, tx, ev, payload); err != nil {
		return err
	}
	p.metrics.applied.Inc()
	return nil
}

func (p *Projector) project(ctx context.Context, tx pgx.Tx, ev events.Event, payload events.Payload) error {
	var err error
	switch d := payload.(type) {
	case *events.TicketCreatedData:
		_, err = tx.Exec(ctx, `INSERT INTO tickets (id, title, description, repository_url, base_branch, ci_command, owner,
				status, created_at, updated_at, last_partition, last_offset)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 'IDLE', $8, $8, $9, $10) ON CONFLICT (id) DO NOTHING`,
			ev.TicketID, d.Title, d.Description, d.RepositoryURL, d.BaseBranch, d.CICommand, d.Owner, ev.OccurredAt, ev.Partition, ev.Offset)
		return err
	case *events.ProcessingRequestedData:
		if _, err = tx.Exec(ctx, `INSERT INTO runs (id, ticket_id, status, reason, requested_by, requested_at, message)
			VALUES ($1, $2, 'PENDING', $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
			ev.RunID, ev.TicketID, d.Reason, d.RequestedBy, ev.OccurredAt, workflow.MessagePending); err != nil {
			return err
		}
		// A request while a run is active will be rejected by the processor: it must not
		// take over the ticket's visible state.
		u, _ := workflow.StatusUpdate(ev.Envelope, payload)
		_, err = tx.Exec(ctx, `UPDATE tickets SET status = $2, step = '', progress = 0, message = $3, error = '',
				current_run_id = $4, updated_at = $5, last_partition = $6, last_offset = $7
			WHERE id = $1 AND status NOT IN ('PENDING', 'IN_PROGRESS')`,
			ev.TicketID, u.Status, u.Message, ev.RunID, ev.OccurredAt, ev.Partition, ev.Offset)
		return err
	case *events.RunStartedData:
		if _, err = tx.Exec(ctx, `UPDATE runs SET status = 'IN_PROGRESS', iteration = $2, started_at = $3 WHERE id = $1`,
			ev.RunID, d.Iteration, ev.OccurredAt); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE tickets SET iteration = $2, updated_at = $3 WHERE id = $1 AND current_run_id = $4`,
			ev.TicketID, d.Iteration, ev.OccurredAt, ev.RunID)
		return err
	case *events.StepStartedData:
		if _, err = tx.Exec(ctx, `INSERT INTO step_runs (run_id, ticket_id, step, iteration, attempt, started_at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
			ev.RunID, ev.TicketID, d.Step, d.Iteration, d.Attempt, ev.OccurredAt); err != nil {
			return err
		}
		if _, err = tx.Exec(ctx, `UPDATE runs SET status = 'IN_PROGRESS', step = $2, progress = $3, iteration = $4 WHERE id = $1`,
			ev.RunID, d.Step, d.Progress, d.Iteration); err != nil {
			return err
		}
		return p.updateTicket(ctx, tx, ev, payload)
	case *events.StepCompletedData:
		_, err = tx.Exec(ctx, `UPDATE step_runs SET finished_at = $5, duration_ms = $6, outcome = $7, error = $8
			WHERE run_id = $1 AND iteration = $2 AND step = $3 AND attempt = $4`,
			ev.RunID, d.Iteration, d.Step, d.Attempt, ev.OccurredAt, d.DurationMS, d.Outcome, d.Error)
		return err
	case *events.RunCompletedData:
		return p.finishRun(ctx, tx, ev, payload, string(workflow.Completed), d.Message, "", d.Branch)
	case *events.RunFailedData:
		return p.finishRun(ctx, tx, ev, payload, string(workflow.Failed), d.Message, d.Error, "")
	case *events.RunCancelledData:
		return p.finishRun(ctx, tx, ev, payload, string(workflow.Cancelled), d.Message, d.Reason, "")
	case *events.RunRejectedData:
		_, err = tx.Exec(ctx, `UPDATE runs SET status = 'REJECTED', error = $2, message = $3, finished_at = $4 WHERE id = $1`,
			ev.RunID, d.Reason, workflow.MessageRejected, ev.OccurredAt)
		return err
	case *events.ValidationApprovedData:
		if _, err = tx.Exec(ctx, `UPDATE runs SET status = 'VALIDATED' WHERE id = $1`, ev.RunID); err != nil {
			return err
		}
		return p.updateTicket(ctx, tx, ev, payload)
	}
	return nil // LogEmitted, CIResult, CancelRequested, ChangesRequested: audit trail only
}

func (p *Projector) finishRun(ctx context.Context, tx pgx.Tx, ev events.Event, payload events.Payload, status, message, errText, branch string) error {
	if _, err := tx.Exec(ctx, `UPDATE runs SET status = $2, message = $3, error = $4, branch = $5, finished_at = $6,
			progress = CASE WHEN $2 = 'COMPLETED' THEN 100 ELSE progress END,
			step = CASE WHEN $2 = 'COMPLETED' THEN 'await_validation' ELSE step END
		WHERE id = $1`, ev.RunID, status, message, errText, branch, ev.OccurredAt); err != nil {
		return err
	}
	return p.updateTicket(ctx, tx, ev, payload)
}

// updateTicket applies the brief's status update for events of the ticket's current run.
func (p *Projector) updateTicket(ctx context.Context, tx pgx.Tx, ev events.Event, payload events.Payload) error {
	u, ok := workflow.StatusUpdate(ev.Envelope, payload)
	if !ok {
		return nil
	}
	step := u.Step
	_, err := tx.Exec(ctx, `UPDATE tickets SET status = $3, step = CASE WHEN $4 = '' THEN step ELSE $4 END,
			progress = CASE WHEN $3 IN ('FAILED', 'CANCELLED') THEN progress ELSE $5 END,
			message = $6, error = $7, updated_at = $8, last_partition = $9, last_offset = $10
		WHERE id = $1 AND current_run_id = $2`,
		ev.TicketID, ev.RunID, string(u.Status), step, u.Progress, u.Message, u.Error, ev.OccurredAt, ev.Partition, ev.Offset)
	return err
}
