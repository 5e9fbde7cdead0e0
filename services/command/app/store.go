package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/events"
)

// store reads the projector's tables.
type store struct {
	db    *pgxpool.Pool
	topic string
}

// Ticket is the API's ticket representation (a row of the tickets projection).
type Ticket struct {
	ID            string    `json:"id"`
	Title         string    `json:"title"`
	Description   string    `json:"description"`
	RepositoryURL string    `json:"repository_url"`
	BaseBranch    string    `json:"base_branch"`
	CICommand     string    `json:"ci_command"`
	Owner         string    `json:"owner"`
	Status        string    `json:"status"`
	Step          string    `json:"step"`
	Progress      int       `json:"progress"`
	Message       string    `json:"message"`
	Error         string    `json:"error"`
	Iteration     int       `json:"iteration"`
	CurrentRunID  string    `json:"current_run_id"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

const ticketColumns = `id, title, description, repository_url, base_branch, ci_command, owner, status, step,
	progress, message, error, iteration, current_run_id, created_at, updated_at`

func scanTicket(row pgx.Row) (Ticket, error) {
	var t Ticket
	err := row.Scan(&t.ID, &t.Title, &t.Description, &t.RepositoryURL, &t.BaseBranch, &t.CICommand, &t.Owner,
		&t.Status, &t.Step, &t.Progress, &t.Message, &t.Error, &t.Iteration, &t.CurrentRunID, &t.CreatedAt, &t.UpdatedAt)
	return t, err
}

var errNotFound = errors.New("not found")

func (s *store) ticket(ctx context.Context, id string) (Ticket, error) {
	t, err := scanTicket(s.db.QueryRow(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Ticket{}, errNotFound
	}
	return t, err
}

func (s *store) tickets(ctx context.Context, owner, status string, limit int) ([]Ticket, error) {
	rows, err := s.db.Query(ctx, `SELECT `+ticketColumns+` FROM tickets
		WHERE ($1 = '' OR owner = $1) AND ($2 = '' OR status = $2)
		ORDER BY created_at DESC, id LIMIT $3`, owner, status, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Ticket, error) { return scanTicket(r) })
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
}

func (s *store) runs(ctx context.Context, ticketID string) ([]Run, error) {
	rows, err := s.db.Query(ctx, `SELECT id, ticket_id, status, step, progress, iteration, reason, requested_by,
		message, error, branch, requested_at, started_at, finished_at
		FROM runs WHERE ticket_id = $1 ORDER BY requested_at DESC, id`, ticketID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Run, error) {
		var x Run
		err := r.Scan(&x.ID, &x.TicketID, &x.Status, &x.Step, &x.Progress, &x.Iteration, &x.Reason, &x.RequestedBy,
			&x.Message, &x.Error, &x.Branch, &x.RequestedAt, &x.StartedAt, &x.FinishedAt)
		return x, err
	})
}

func (s *store) runTicket(ctx context.Context, runID string) (string, error) {
	var ticketID string
	err := s.db.QueryRow(ctx, `SELECT ticket_id FROM runs WHERE id = $1`, runID).Scan(&ticketID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", errNotFound
	}
	return ticketID, err
}

// StoredEvent is one audit-trail row.
type StoredEvent struct {
	Partition int32
	Offset    int64
	Envelope  []byte
}

// events pages through the audit trail of a ticket (or of one run) in append order,
// strictly after (partition, offset).
func (s *store) events(ctx context.Context, ticketID, runID string, afterPartition int32, afterOffset int64, limit int) ([]StoredEvent, error) {
	rows, err := s.db.Query(ctx, `SELECT partition, "offset", envelope::text FROM ticket_events
		WHERE ticket_id = $1 AND ($2 = '' OR run_id = $2) AND (partition, "offset") > ($3, $4)
		ORDER BY partition, "offset" LIMIT $5`, ticketID, runID, afterPartition, afterOffset, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (StoredEvent, error) {
		var e StoredEvent
		var text string
		err := r.Scan(&e.Partition, &e.Offset, &text)
		e.Envelope = []byte(text)
		return e, err
	})
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

func (s *store) stepStats(ctx context.Context, since, until time.Time) ([]StepStats, error) {
	rows, err := s.db.Query(ctx, `SELECT step, count(*),
			percentile_cont(0.5)  WITHIN GROUP (ORDER BY duration_ms),
			percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms),
			max(duration_ms)::float8,
			avg(CASE WHEN outcome = 'failed' THEN 1.0 ELSE 0.0 END)::float8
		FROM step_runs
		WHERE finished_at IS NOT NULL AND started_at >= $1 AND started_at < $2
		GROUP BY step`, since, until)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (StepStats, error) {
		var x StepStats
		err := r.Scan(&x.Step, &x.Count, &x.P50MS, &x.P95MS, &x.P99MS, &x.MaxMS, &x.FailureRate)
		return x, err
	})
}

// waitProjected waits until the projector has applied the record at pos, so the caller's
// next read sees its own write. It gives up silently at the deadline: the event is durable
// and the projection will catch up.
func (s *store) waitProjected(ctx context.Context, pos events.Position, max time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	delay := 2 * time.Millisecond
	for {
		var next int64
		err := s.db.QueryRow(ctx, `SELECT coalesce(max(next_offset), -1) FROM consumer_offsets
			WHERE consumer = 'projector' AND topic = $1 AND partition = $2`, s.topic, pos.Partition).Scan(&next)
		if err == nil && next > pos.Offset {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(delay):
		}
		delay = min(delay*2, 50*time.Millisecond)
	}
}

// lockTicket serialises writes to one ticket across command replicas (a session advisory
// lock), so two concurrent starts cannot both pass the "no active run" check.
func (s *store) lockTicket(ctx context.Context, ticketID string) (unlock func(), err error) {
	conn, err := s.db.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, ticketID); err != nil {
		conn.Release()
		return nil, fmt.Errorf("lock ticket: %w", err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, ticketID); err != nil {
			conn.Conn().Close(ctx) // dropping the session releases the lock
		}
		conn.Release()
	}, nil
}
