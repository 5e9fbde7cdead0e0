package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/events"
)

// store is the PostgreSQL adapter: the projector's tables (read) and the idempotency keys.
// Every query runs on a connection acquired within acquireTimeout, so an exhausted pool
// answers 503 promptly instead of queueing requests without bound.
type store struct {
	db             *pgxpool.Pool
	topic          string
	acquireTimeout time.Duration
}

// querier is a pool connection (or a pool): what the queries below run on.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// errBusy means no connection could be had within the acquire timeout.
var errBusy = errors.New("database busy: no connection available")

// acquire takes one connection within the acquire timeout; the caller releases it.
func (s *store) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	actx, cancel := context.WithTimeout(ctx, s.acquireTimeout)
	defer cancel()
	conn, err := s.db.Acquire(actx)
	if err != nil {
		if ctx.Err() == nil && actx.Err() != nil {
			return nil, fmt.Errorf("%w within %s", errBusy, s.acquireTimeout)
		}
		return nil, err
	}
	return conn, nil
}

// with runs fn on a connection acquired for it.
func (s *store) with(ctx context.Context, fn func(q querier) error) error {
	conn, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	return fn(conn)
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

func ticketOn(ctx context.Context, q querier, id string) (Ticket, error) {
	t, err := scanTicket(q.QueryRow(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Ticket{}, errNotFound
	}
	return t, err
}

func (s *store) ticket(ctx context.Context, id string) (t Ticket, err error) {
	err = s.with(ctx, func(q querier) error { t, err = ticketOn(ctx, q, id); return err })
	return t, err
}

func (s *store) tickets(ctx context.Context, owner, status string, limit int) (out []Ticket, err error) {
	err = s.with(ctx, func(q querier) error { out, err = ticketsOn(ctx, q, owner, status, limit); return err })
	return out, err
}

func ticketsOn(ctx context.Context, q querier, owner, status string, limit int) ([]Ticket, error) {
	rows, err := q.Query(ctx, `SELECT `+ticketColumns+` FROM tickets
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

func (s *store) runs(ctx context.Context, ticketID string) (out []Run, err error) {
	err = s.with(ctx, func(q querier) error { out, err = runsOn(ctx, q, ticketID); return err })
	return out, err
}

func runsOn(ctx context.Context, q querier, ticketID string) ([]Run, error) {
	rows, err := q.Query(ctx, `SELECT id, ticket_id, status, step, progress, iteration, reason, requested_by,
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

func (s *store) runTicket(ctx context.Context, runID string) (ticketID string, err error) {
	err = s.with(ctx, func(q querier) error {
		return q.QueryRow(ctx, `SELECT ticket_id FROM runs WHERE id = $1`, runID).Scan(&ticketID)
	})
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
func (s *store) events(ctx context.Context, ticketID, runID string, afterPartition int32, afterOffset int64, limit int) (out []StoredEvent, err error) {
	err = s.with(ctx, func(q querier) error {
		out, err = eventsOn(ctx, q, ticketID, runID, afterPartition, afterOffset, limit)
		return err
	})
	return out, err
}

func eventsOn(ctx context.Context, q querier, ticketID, runID string, afterPartition int32, afterOffset int64, limit int) ([]StoredEvent, error) {
	rows, err := q.Query(ctx, `SELECT partition, "offset", envelope::text FROM ticket_events
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

func (s *store) stepStats(ctx context.Context, since, until time.Time) (out []StepStats, err error) {
	err = s.with(ctx, func(q querier) error { out, err = stepStatsOn(ctx, q, since, until); return err })
	return out, err
}

func stepStatsOn(ctx context.Context, q querier, since, until time.Time) ([]StepStats, error) {
	rows, err := q.Query(ctx, `SELECT step, count(*),
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
// and the projection will catch up. It polls on q, the connection the write already holds:
// asking the pool for a second one while holding the ticket lock is how the pool deadlocked.
func (s *store) waitProjected(ctx context.Context, q querier, pos events.Position, max time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	delay := 2 * time.Millisecond
	for {
		var next int64
		err := q.QueryRow(ctx, `SELECT coalesce(max(next_offset), -1) FROM consumer_offsets
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
