// Package adapters is everything the processor drives: its tables in PostgreSQL (store.go,
// artifacts.go) and Kafka (runs.go: each run's transactional producer; eventlog.go: reading
// the log back).
package adapters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/services/processor/app"
	"github.com/ticketflow/ticketflow/services/processor/executor"
)

// Store is the processor's own state (processor_tickets, processor_runs, processor_feedback,
// processor_instances). owner is this processor's instance id: every write a run's driver
// makes is conditioned on still owning the run, so a processor that lost its lease (paused
// past it, then resumed) changes nothing of a run another processor now drives.
type Store struct {
	db    *pgxpool.Pool
	owner string
}

// NewStore is the store of the processor whose instance id is owner.
func NewStore(db *pgxpool.Pool, owner string) *Store { return &Store{db: db, owner: owner} }

func (s *Store) SaveTicket(ctx context.Context, id string, d *events.TicketCreatedData) error {
	_, err := s.db.Exec(ctx, `INSERT INTO processor_tickets (ticket_id, title, description, repository_url, base_branch, ci_command, simulate_failure)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (ticket_id) DO NOTHING`,
		id, d.Title, d.Description, d.RepositoryURL, d.BaseBranch, d.CICommand, d.SimulateFailure)
	return err
}

// AddFeedback stores a review comment once per event: a redelivered or re-appended
// ChangesRequested changes nothing. seq (the event's offset) orders a ticket's comments.
func (s *Store) AddFeedback(ctx context.Context, ticketID, eventID string, seq int64, comment string) error {
	_, err := s.db.Exec(ctx, `INSERT INTO processor_feedback (ticket_id, event_id, seq, comment) VALUES ($1, $2, $3, $4)
		ON CONFLICT (ticket_id, event_id) DO NOTHING`, ticketID, eventID, seq, comment)
	return err
}

func (s *Store) Ticket(ctx context.Context, id string) (executor.Ticket, int, error) {
	var t executor.Ticket
	var used int
	err := s.db.QueryRow(ctx, `SELECT ticket_id, title, description, repository_url, base_branch, ci_command, simulate_failure,
			iterations_used FROM processor_tickets WHERE ticket_id = $1`, id).
		Scan(&t.ID, &t.Title, &t.Description, &t.RepositoryURL, &t.BaseBranch, &t.CICommand, &t.SimulateFailure, &used)
	if err != nil {
		return t, 0, err
	}
	rows, err := s.db.Query(ctx, `SELECT comment FROM processor_feedback WHERE ticket_id = $1 ORDER BY seq, event_id`, id)
	if err != nil {
		return t, 0, err
	}
	if t.Feedback, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return t, 0, err
	}
	return t, used, nil
}

// AcceptRun decides a run request exactly once. A new request becomes the ticket's active
// Run, or is rejected: the rejection is stored as the run's pending terminal event (status
// terminating) in the same transaction, so a redelivered request finds the row and the
// RunRejected is appended once (by drive/recoverTerminal), never once per delivery.
func (s *Store) AcceptRun(ctx context.Context, ev events.Event, lease time.Duration, mayWait bool,
	rejection func(reason, activeRunID string) (events.Envelope, error)) (out app.AcceptOutcome, err error) {
	owner := s.owner
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		out = app.AcceptOutcome{}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM processor_runs WHERE run_id = $1)`, ev.RunID).Scan(&exists); err != nil {
			return err
		}
		if exists {
			// Redelivery: decided earlier. Drive it only if it is ours or nobody's any more;
			// a live owner elsewhere keeps it (taking it would fence that owner mid-run).
			tag, err := tx.Exec(ctx, `UPDATE processor_runs SET owner = $2, previous_owner = CASE WHEN owner = '' THEN previous_owner ELSE owner END, lease_until = now() + $3::interval
				WHERE run_id = $1 AND status <> 'terminal' AND (owner = $2 OR lease_until < now())`, ev.RunID, owner, lease.String())
			out.Drive = err == nil && tag.RowsAffected() == 1
			return err
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
			if status == app.RunTerminating && mayWait {
				out.Wait = true
				return nil
			}
			reason = fmt.Sprintf("run %s is already active for this ticket", out.ActiveRunID)
		}
		status, pending := app.RunActive, []byte(nil)
		if reason != "" {
			env, err := rejection(reason, out.ActiveRunID)
			if err != nil {
				return err
			}
			if pending, err = json.Marshal(env); err != nil {
				return err
			}
			status = app.RunTerminating
		} else {
			if _, err := tx.Exec(ctx, `UPDATE processor_tickets SET active_run_id = $2 WHERE ticket_id = $1`, ev.TicketID, ev.RunID); err != nil {
				return err
			}
			over, err := overShare(ctx, tx, owner)
			if err != nil {
				return err
			}
			if over {
				owner = "" // claimable at once (lease already expired) by a processor under its share
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO processor_runs (run_id, ticket_id, partition, request_offset, status, pending_event, owner, lease_until)
			VALUES ($1, $2, $3, $4, $5, $6::json, $7, CASE WHEN $7 = '' THEN now() - interval '1 millisecond' ELSE now() + $8::interval END)`,
			ev.RunID, ev.TicketID, ev.Partition, ev.Offset, status, nullJSON(pending), owner, lease.String())
		out.Drive = err == nil && owner != ""
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

func (s *Store) Run(ctx context.Context, runID string) (app.RunRow, error) {
	var r app.RunRow
	var state []byte
	var pending *string
	err := s.db.QueryRow(ctx, `SELECT run_id, ticket_id, partition, request_offset, status, step, attempt, iteration, state,
			cancel_requested, pending_event::text, owner, previous_owner FROM processor_runs WHERE run_id = $1`, runID).
		Scan(&r.RunID, &r.TicketID, &r.Partition, &r.RequestOffset, &r.Status, &r.Step, &r.Attempt, &r.Iteration, &state, &r.CancelRequested, &pending, &r.Owner, &r.PreviousOwner)
	if err == nil {
		_ = json.Unmarshal(state, &r.State)
		if pending != nil {
			r.PendingEvent = []byte(*pending)
		}
	}
	return r, err
}

// shareSQL computes, for owner $1, how many open runs it holds (mine) and its fair share of
// all open runs: ceil(open runs / live processors), this one counted live.
const shareSQL = `SELECT
	(SELECT count(*) FROM processor_runs WHERE owner = $1 AND status <> 'terminal') AS mine,
	ceil((SELECT count(*) FROM processor_runs WHERE status <> 'terminal')::numeric /
		((SELECT count(*) FROM processor_instances WHERE heartbeat_until > now() AND instance_id <> $1) + 1))::bigint AS share`

// overShare reports whether taking one more run would put owner above its fair share (the
// new run, already counted open by the caller's insert to come, is added here).
func overShare(ctx context.Context, tx pgx.Tx, owner string) (bool, error) {
	var mine, open, others int64
	err := tx.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM processor_runs WHERE owner = $1 AND status <> 'terminal'),
		(SELECT count(*) FROM processor_runs WHERE status <> 'terminal'),
		(SELECT count(*) FROM processor_instances WHERE heartbeat_until > now() AND instance_id <> $1)`, owner).
		Scan(&mine, &open, &others)
	if err != nil {
		return false, err
	}
	open++                                  // the run being accepted
	share := (open + others) / (others + 1) // ceil(open / live)
	return mine+1 > share, nil
}

// ClaimRuns takes over the open runs this owner held before a restart, then, up to its fair
// share, runs whose lease has expired (their owner died or was paused) or that were accepted
// unowned; it returns their ids. Claiming at most the share is what keeps a dead processor's
// runs from all landing on whichever survivor ticks first.
func (s *Store) ClaimRuns(ctx context.Context, lease time.Duration, exclude []string) ([]string, error) {
	var claimed []string
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE processor_runs SET previous_owner = owner, lease_until = now() + $2::interval
			WHERE status <> 'terminal' AND owner = $1 AND NOT (run_id = ANY($3)) RETURNING run_id`, s.owner, lease.String(), exclude)
		if err != nil {
			return err
		}
		if claimed, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `WITH load AS (`+shareSQL+`),
			pick AS (SELECT run_id FROM processor_runs
				WHERE status <> 'terminal' AND owner <> $1 AND lease_until < now()
				ORDER BY lease_until, run_id
				LIMIT (SELECT greatest(share - mine, 0) FROM load)
				FOR UPDATE SKIP LOCKED)
			UPDATE processor_runs r SET owner = $1, previous_owner = CASE WHEN r.owner = '' THEN r.previous_owner ELSE r.owner END, lease_until = now() + $2::interval
			FROM pick WHERE r.run_id = pick.run_id RETURNING r.run_id`, s.owner, lease.String())
		if err != nil {
			return err
		}
		others, err := pgx.CollectRows(rows, pgx.RowTo[string])
		claimed = append(claimed, others...)
		return err
	})
	return claimed, err
}

// Surplus is how many of its open runs this processor should hand over: what it holds
// beyond its fair share, up to the room the other processors have below theirs. Only
// processors that heartbeated within the last half lease count as room: one that died keeps
// its heartbeat for up to a lease, and runs handed to it would wait for nobody.
func (s *Store) Surplus(ctx context.Context, lease time.Duration) (int, error) {
	var mine, open, others int64
	var held []int64
	err := s.db.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM processor_runs WHERE owner = $1 AND status <> 'terminal'),
		(SELECT count(*) FROM processor_runs WHERE status <> 'terminal'),
		(SELECT count(*) FROM processor_instances WHERE heartbeat_until > now() AND instance_id <> $1),
		(SELECT coalesce(array_agg((SELECT count(*) FROM processor_runs r WHERE r.owner = i.instance_id AND r.status <> 'terminal')), '{}')
			FROM processor_instances i WHERE i.heartbeat_until > now() + $2::interval / 2 AND i.instance_id <> $1)`,
		s.owner, lease.String()).Scan(&mine, &open, &others, &held)
	if err != nil {
		return 0, err
	}
	share := (open + others) / (others + 1) // ceil(open / live)
	var room int64
	for _, n := range held {
		room += max(share-n, 0)
	}
	return int(min(max(mine-share, 0), room)), nil
}

// HandOver gives up a run this processor drives, at a step boundary: the next step is
// recorded not yet started (attempt 0), so whoever claims the run starts it afresh instead
// of retrying the step that just completed here.
func (s *Store) HandOver(ctx context.Context, runID, nextStep string, iteration int, state executor.RunState) error {
	b, _ := json.Marshal(state)
	return owned(s.db.Exec(ctx, `UPDATE processor_runs SET step = $2, attempt = 0, iteration = $3, state = $4, updated_at = now(),
			owner = '', previous_owner = owner, lease_until = now() - interval '1 millisecond'
		WHERE run_id = $1 AND owner = $5 AND status = 'active'`, runID, nextStep, iteration, b, s.owner))
}

// RenewLeases extends the leases of the runs this processor drives and returns those it
// still owns; the others were taken over while it was not renewing (paused, or too slow).
func (s *Store) RenewLeases(ctx context.Context, lease time.Duration, runIDs []string) ([]string, error) {
	rows, err := s.db.Query(ctx, `UPDATE processor_runs SET lease_until = CASE WHEN status = 'terminal' THEN lease_until ELSE now() + $2::interval END
		WHERE owner = $1 AND run_id = ANY($3) RETURNING run_id`, s.owner, lease.String(), runIDs)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Heartbeat marks this processor alive for one lease: it counts in everyone's share.
func (s *Store) Heartbeat(ctx context.Context, lease time.Duration) error {
	_, err := s.db.Exec(ctx, `INSERT INTO processor_instances (instance_id, heartbeat_until) VALUES ($1, now() + $2::interval)
		ON CONFLICT (instance_id) DO UPDATE SET heartbeat_until = EXCLUDED.heartbeat_until`, s.owner, lease.String())
	return err
}

// Release, on a clean shutdown once no driver runs, lets other processors take this one's
// runs at once instead of after their leases (a restart with the same instance id takes
// them back anyway).
func (s *Store) Release(ctx context.Context) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM processor_instances WHERE instance_id = $1`, s.owner); err != nil {
		return err
	}
	_, err := s.db.Exec(ctx, `UPDATE processor_runs SET lease_until = now() - interval '1 millisecond'
		WHERE owner = $1 AND status <> 'terminal'`, s.owner)
	return err
}

// owned turns a guarded update's row count into app.ErrLeaseLost when the run is not ours.
func owned(tag pgconn.CommandTag, err error) error {
	if err == nil && tag.RowsAffected() == 0 {
		return app.ErrLeaseLost
	}
	return err
}

// StartStep records the intent to run a step before its StepStarted is appended.
func (s *Store) StartStep(ctx context.Context, runID, step string, attempt, iteration int, state executor.RunState) error {
	b, _ := json.Marshal(state)
	return owned(s.db.Exec(ctx, `UPDATE processor_runs SET step = $2, attempt = $3, iteration = $4, state = $5, updated_at = now()
		WHERE run_id = $1 AND owner = $6`, runID, step, attempt, iteration, b, s.owner))
}

func (s *Store) SaveState(ctx context.Context, runID string, state executor.RunState) error {
	b, _ := json.Marshal(state)
	return owned(s.db.Exec(ctx, `UPDATE processor_runs SET state = $2, updated_at = now() WHERE run_id = $1 AND owner = $3`, runID, b, s.owner))
}

func (s *Store) UseIteration(ctx context.Context, runID, ticketID string, iteration int) error {
	return owned(s.db.Exec(ctx, `UPDATE processor_tickets SET iterations_used = GREATEST(iterations_used, $2) WHERE ticket_id = $1
		AND EXISTS (SELECT 1 FROM processor_runs WHERE run_id = $3 AND owner = $4)`, ticketID, iteration, runID, s.owner))
}

func (s *Store) RequestCancel(ctx context.Context, runID, by string) (bool, error) {
	tag, err := s.db.Exec(ctx, `UPDATE processor_runs SET cancel_requested = $2 WHERE run_id = $1 AND status = 'active' AND cancel_requested = ''`, runID, by)
	return tag.RowsAffected() == 1, err
}

// BeginTerminal stores the terminal event before it is appended; finishTerminal marks it
// appended and frees the ticket. A crash between the two is resolved by looking for the
// event in the log (see app's recoverTerminal).
func (s *Store) BeginTerminal(ctx context.Context, runID string, env events.Envelope) error {
	b, err := json.Marshal(env)
	if err != nil {
		return err
	}
	return owned(s.db.Exec(ctx, `UPDATE processor_runs SET status = 'terminating', pending_event = $2, updated_at = now()
		WHERE run_id = $1 AND status = 'active' AND owner = $3`, runID, string(b), s.owner))
}

func (s *Store) FinishTerminal(ctx context.Context, runID, ticketID string) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if err := owned(tx.Exec(ctx, `UPDATE processor_runs SET status = 'terminal', updated_at = now() WHERE run_id = $1 AND owner = $2`, runID, s.owner)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE processor_tickets SET active_run_id = '' WHERE ticket_id = $1 AND active_run_id = $2`, ticketID, runID)
		return err
	})
}

// EarlierRuns returns the states of the ticket's finished runs other than runID, oldest first.
func (s *Store) EarlierRuns(ctx context.Context, ticketID, runID string) ([]executor.RunState, error) {
	rows, err := s.db.Query(ctx, `SELECT state FROM processor_runs
		WHERE ticket_id = $1 AND run_id <> $2 AND status = 'terminal' ORDER BY created_at, run_id`, ticketID, runID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (executor.RunState, error) {
		var raw []byte
		var st executor.RunState
		if err := r.Scan(&raw); err != nil {
			return st, err
		}
		_ = json.Unmarshal(raw, &st) // a state this build cannot read adds nothing to the conversation
		return st, nil
	})
}

// CancelRequested is who asked to cancel the run ("" for nobody, and when the row cannot be read).
func (s *Store) CancelRequested(ctx context.Context, runID string) string {
	var by string
	_ = s.db.QueryRow(ctx, `SELECT cancel_requested FROM processor_runs WHERE run_id = $1`, runID).Scan(&by)
	return by
}
