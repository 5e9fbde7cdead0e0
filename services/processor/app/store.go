package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/events"
)

// Run statuses in processor_runs.
const (
	runActive      = "active"
	runTerminating = "terminating"
	runTerminal    = "terminal"
)

// store is the processor's own state (processor_tickets, processor_runs).
type store struct{ db *pgxpool.Pool }

func (s *store) saveTicket(ctx context.Context, id string, d *events.TicketCreatedData) error {
	_, err := s.db.Exec(ctx, `INSERT INTO processor_tickets (ticket_id, title, description, repository_url, base_branch, ci_command, simulate_failure)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (ticket_id) DO NOTHING`,
		id, d.Title, d.Description, d.RepositoryURL, d.BaseBranch, d.CICommand, d.SimulateFailure)
	return err
}

func (s *store) addFeedback(ctx context.Context, ticketID, comment string) error {
	b, _ := json.Marshal([]string{comment})
	_, err := s.db.Exec(ctx, `UPDATE processor_tickets SET feedback = feedback || $2::jsonb WHERE ticket_id = $1`, ticketID, string(b))
	return err
}

func (s *store) ticket(ctx context.Context, id string) (Ticket, int, error) {
	var t Ticket
	var used int
	var feedback []byte
	err := s.db.QueryRow(ctx, `SELECT ticket_id, title, description, repository_url, base_branch, ci_command, simulate_failure,
			iterations_used, feedback FROM processor_tickets WHERE ticket_id = $1`, id).
		Scan(&t.ID, &t.Title, &t.Description, &t.RepositoryURL, &t.BaseBranch, &t.CICommand, &t.SimulateFailure, &used, &feedback)
	if err != nil {
		return t, 0, err
	}
	_ = json.Unmarshal(feedback, &t.Feedback)
	return t, used, nil
}

// acceptOutcome is what acceptRun decided about a run request.
type acceptOutcome struct {
	// Drive: the run has a row (accepted now or earlier, or rejected with its RunRejected
	// stored as the pending terminal event); driving it appends what is still missing.
	Drive bool
	// Wait: the ticket's active run has stored its terminal event but not yet confirmed it;
	// ask again in a moment instead of rejecting a request that arrived after the run ended.
	// Only when mayWait; otherwise the request is rejected.
	Wait bool
	// ActiveRunID is the run that made the request wait or be rejected.
	ActiveRunID string
}

// acceptRun decides a run request exactly once. A new request becomes the ticket's active
// run, or is rejected: the rejection is stored as the run's pending terminal event (status
// terminating) in the same transaction, so a redelivered request finds the row and the
// RunRejected is appended once (by drive/recoverTerminal), never once per delivery.
func (s *store) acceptRun(ctx context.Context, ev events.Event, owner string, lease time.Duration, mayWait bool,
	rejection func(reason, activeRunID string) (events.Envelope, error)) (out acceptOutcome, err error) {
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		out = acceptOutcome{}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM processor_runs WHERE run_id = $1)`, ev.RunID).Scan(&exists); err != nil {
			return err
		}
		if exists {
			out.Drive = true // redelivery: decided earlier
			return nil
		}
		reason := ""
		err := tx.QueryRow(ctx, `SELECT active_run_id FROM processor_tickets WHERE ticket_id = $1 FOR UPDATE`, ev.TicketID).Scan(&out.ActiveRunID)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			reason = errUnknownTicket.Error()
		case err != nil:
			return err
		case out.ActiveRunID != "":
			var status string
			if err := tx.QueryRow(ctx, `SELECT status FROM processor_runs WHERE run_id = $1`, out.ActiveRunID).Scan(&status); err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			if status == runTerminating && mayWait {
				out.Wait = true
				return nil
			}
			reason = fmt.Sprintf("run %s is already active for this ticket", out.ActiveRunID)
		}
		status, pending := runActive, []byte(nil)
		if reason != "" {
			env, err := rejection(reason, out.ActiveRunID)
			if err != nil {
				return err
			}
			if pending, err = json.Marshal(env); err != nil {
				return err
			}
			status = runTerminating
		} else if _, err := tx.Exec(ctx, `UPDATE processor_tickets SET active_run_id = $2 WHERE ticket_id = $1`, ev.TicketID, ev.RunID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO processor_runs (run_id, ticket_id, partition, request_offset, status, pending_event, owner, lease_until)
			VALUES ($1, $2, $3, $4, $5, $6::json, $7, now() + $8::interval)`,
			ev.RunID, ev.TicketID, ev.Partition, ev.Offset, status, nullJSON(pending), owner, lease.String())
		out.Drive = err == nil
		return err
	})
	return out, err
}

func nullJSON(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

var errUnknownTicket = errors.New("unknown ticket")

type runRow struct {
	RunID           string
	TicketID        string
	Partition       int32
	RequestOffset   int64
	Status          string
	Step            string
	Attempt         int
	Iteration       int
	State           RunState
	CancelRequested string
	PendingEvent    []byte
}

func (s *store) run(ctx context.Context, runID string) (runRow, error) {
	var r runRow
	var state []byte
	var pending *string
	err := s.db.QueryRow(ctx, `SELECT run_id, ticket_id, partition, request_offset, status, step, attempt, iteration, state,
			cancel_requested, pending_event::text FROM processor_runs WHERE run_id = $1`, runID).
		Scan(&r.RunID, &r.TicketID, &r.Partition, &r.RequestOffset, &r.Status, &r.Step, &r.Attempt, &r.Iteration, &state, &r.CancelRequested, &pending)
	if err == nil {
		_ = json.Unmarshal(state, &r.State)
		if pending != nil {
			r.PendingEvent = []byte(*pending)
		}
	}
	return r, err
}

// claimRuns takes over open runs whose lease has expired or that this owner held before a
// restart, and returns their ids.
func (s *store) claimRuns(ctx context.Context, owner string, lease time.Duration, exclude []string) ([]string, error) {
	rows, err := s.db.Query(ctx, `UPDATE processor_runs SET owner = $1, lease_until = now() + $2::interval
		WHERE status <> 'terminal' AND (owner = $1 OR lease_until < now()) AND NOT (run_id = ANY($3))
		RETURNING run_id`, owner, lease.String(), exclude)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (s *store) renewLeases(ctx context.Context, owner string, lease time.Duration, runIDs []string) error {
	_, err := s.db.Exec(ctx, `UPDATE processor_runs SET lease_until = now() + $2::interval
		WHERE owner = $1 AND run_id = ANY($3) AND status <> 'terminal'`, owner, lease.String(), runIDs)
	return err
}

// startStep records the intent to run a step before its StepStarted is appended.
func (s *store) startStep(ctx context.Context, runID, step string, attempt, iteration int, state RunState) error {
	b, _ := json.Marshal(state)
	_, err := s.db.Exec(ctx, `UPDATE processor_runs SET step = $2, attempt = $3, iteration = $4, state = $5, updated_at = now() WHERE run_id = $1`,
		runID, step, attempt, iteration, b)
	return err
}

func (s *store) saveState(ctx context.Context, runID string, state RunState) error {
	b, _ := json.Marshal(state)
	_, err := s.db.Exec(ctx, `UPDATE processor_runs SET state = $2, updated_at = now() WHERE run_id = $1`, runID, b)
	return err
}

func (s *store) useIteration(ctx context.Context, ticketID string, iteration int) error {
	_, err := s.db.Exec(ctx, `UPDATE processor_tickets SET iterations_used = GREATEST(iterations_used, $2) WHERE ticket_id = $1`, ticketID, iteration)
	return err
}

func (s *store) requestCancel(ctx context.Context, runID, by string) (bool, error) {
	tag, err := s.db.Exec(ctx, `UPDATE processor_runs SET cancel_requested = $2 WHERE run_id = $1 AND status = 'active' AND cancel_requested = ''`, runID, by)
	return tag.RowsAffected() == 1, err
}

// beginTerminal stores the terminal event before it is appended; finishTerminal marks it
// appended and frees the ticket. A crash between the two is resolved by looking for the
// event in the log (see engine.recoverTerminal).
func (s *store) beginTerminal(ctx context.Context, runID string, env events.Envelope) error {
	b, err := json.Marshal(env)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, `UPDATE processor_runs SET status = 'terminating', pending_event = $2, updated_at = now()
		WHERE run_id = $1 AND status = 'active'`, runID, string(b))
	return err
}

func (s *store) finishTerminal(ctx context.Context, runID, ticketID string) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE processor_runs SET status = 'terminal', updated_at = now() WHERE run_id = $1`, runID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE processor_tickets SET active_run_id = '' WHERE ticket_id = $1 AND active_run_id = $2`, ticketID, runID)
		return err
	})
}

// earlierRuns returns the states of the ticket's finished runs other than runID, oldest first.
func (s *store) earlierRuns(ctx context.Context, ticketID, runID string) ([]RunState, error) {
	rows, err := s.db.Query(ctx, `SELECT state FROM processor_runs
		WHERE ticket_id = $1 AND run_id <> $2 AND status = 'terminal' ORDER BY created_at, run_id`, ticketID, runID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (RunState, error) {
		var raw []byte
		var st RunState
		if err := r.Scan(&raw); err != nil {
			return st, err
		}
		_ = json.Unmarshal(raw, &st) // a state this build cannot read adds nothing to the conversation
		return st, nil
	})
}
