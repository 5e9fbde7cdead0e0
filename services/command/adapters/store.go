// Package adapters is everything the command service drives: PostgreSQL (Store: the
// projector's tables, read; Session: a write's one connection, its locks and the
// idempotency keys) and Kafka (EventLog: the idempotent and transactional producers and the
// recovery scan). It implements the interfaces of package app.
package adapters

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/postgres"
	"github.com/ticketflow/ticketflow/services/command/app"
)

// Store is the PostgreSQL adapter (app.Store). Every query runs on a connection acquired
// within acquireTimeout, so an exhausted pool answers 503 promptly instead of queueing
// requests without bound.
type Store struct {
	db             *pgxpool.Pool
	topic          string
	acquireTimeout time.Duration
	projections    *Projections
}

// NewStore reads db; topic is the event log's, whose projector offsets writes wait for,
// woken by projections (nil: they only poll).
func NewStore(db *pgxpool.Pool, topic string, acquireTimeout time.Duration, projections *Projections) *Store {
	return &Store{db: db, topic: topic, acquireTimeout: acquireTimeout, projections: projections}
}

// querier is a pool connection (or a pool): what the queries below run on.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// acquire takes one connection within the acquire timeout; the caller releases it.
func (s *Store) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	actx, cancel := context.WithTimeout(ctx, s.acquireTimeout)
	defer cancel()
	conn, err := s.db.Acquire(actx)
	if err != nil {
		if ctx.Err() == nil && actx.Err() != nil {
			return nil, fmt.Errorf("%w within %s", app.ErrBusy, s.acquireTimeout)
		}
		return nil, err
	}
	return conn, nil
}

// with runs fn on a connection acquired for it.
func (s *Store) with(ctx context.Context, fn func(q querier) error) error {
	conn, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	return fn(conn)
}

// Session takes the connection a write holds from start to answer.
func (s *Store) Session(ctx context.Context) (app.Session, error) {
	conn, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &Session{conn: conn, topic: s.topic, projections: s.projections}, nil
}

const ticketColumns = `id, title, description, repository_url, base_branch, ci_command, owner, status, step,
	progress, message, error, iteration, current_run_id, created_at, updated_at,
	(SELECT coalesce(sum(r.llm_input_tokens), 0)::bigint FROM runs r WHERE r.ticket_id = tickets.id),
	(SELECT coalesce(sum(r.llm_output_tokens), 0)::bigint FROM runs r WHERE r.ticket_id = tickets.id),
	(SELECT coalesce(sum(r.llm_cost_usd), 0)::float8 FROM runs r WHERE r.ticket_id = tickets.id),
	pull_request_url`

func scanTicket(row pgx.Row) (app.Ticket, error) {
	var t app.Ticket
	err := row.Scan(&t.ID, &t.Title, &t.Description, &t.RepositoryURL, &t.BaseBranch, &t.CICommand, &t.Owner,
		&t.Status, &t.Step, &t.Progress, &t.Message, &t.Error, &t.Iteration, &t.CurrentRunID, &t.CreatedAt, &t.UpdatedAt,
		&t.LLMInputTokens, &t.LLMOutputTokens, &t.LLMCostUSD, &t.PullRequestURL)
	return t, err
}

func ticketOn(ctx context.Context, q querier, id string) (app.Ticket, error) {
	t, err := scanTicket(q.QueryRow(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return app.Ticket{}, app.ErrNotFound
	}
	return t, err
}

// Ticket reads one ticket.
func (s *Store) Ticket(ctx context.Context, id string) (t app.Ticket, err error) {
	err = s.with(ctx, func(q querier) error { t, err = ticketOn(ctx, q, id); return err })
	return t, err
}

// Tickets lists tickets newest first.
func (s *Store) Tickets(ctx context.Context, owner, status string, limit int) (out []app.Ticket, err error) {
	err = s.with(ctx, func(q querier) error {
		rows, err := q.Query(ctx, `SELECT `+ticketColumns+` FROM tickets
			WHERE ($1 = '' OR owner = $1) AND ($2 = '' OR status = $2)
			ORDER BY created_at DESC, id LIMIT $3`, owner, status, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.Ticket, error) { return scanTicket(r) })
		return err
	})
	return out, err
}

// Runs lists a ticket's runs newest first.
func (s *Store) Runs(ctx context.Context, ticketID string) (out []app.Run, err error) {
	err = s.with(ctx, func(q querier) error {
		rows, err := q.Query(ctx, `SELECT id, ticket_id, status, step, progress, iteration, reason, requested_by,
			message, error, branch, requested_at, started_at, finished_at, trace_id,
			llm_calls, llm_input_tokens, llm_output_tokens, llm_cost_usd, tool_calls, repository_config, pull_request_url
			FROM runs WHERE ticket_id = $1 ORDER BY requested_at DESC, id`, ticketID)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.Run, error) {
			var x app.Run
			err := r.Scan(&x.ID, &x.TicketID, &x.Status, &x.Step, &x.Progress, &x.Iteration, &x.Reason, &x.RequestedBy,
				&x.Message, &x.Error, &x.Branch, &x.RequestedAt, &x.StartedAt, &x.FinishedAt, &x.TraceID,
				&x.LLMCalls, &x.LLMInputTokens, &x.LLMOutputTokens, &x.LLMCostUSD, &x.ToolCalls, &x.RepositoryConfig, &x.PullRequestURL)
			return x, err
		})
		return err
	})
	return out, err
}

// RunTicket is the ticket of a projected run.
func (s *Store) RunTicket(ctx context.Context, runID string) (string, error) {
	return s.oneID(ctx, `SELECT ticket_id FROM runs WHERE id = $1`, runID)
}

// ArtifactTicket is the ticket of a run known by its artifacts.
func (s *Store) ArtifactTicket(ctx context.Context, runID string) (string, error) {
	return s.oneID(ctx, `SELECT ticket_id FROM run_artifacts WHERE run_id = $1 LIMIT 1`, runID)
}

func (s *Store) oneID(ctx context.Context, query, arg string) (id string, err error) {
	err = s.with(ctx, func(q querier) error { return q.QueryRow(ctx, query, arg).Scan(&id) })
	if errors.Is(err, pgx.ErrNoRows) {
		return "", app.ErrNotFound
	}
	return id, err
}

// Events pages through the audit trail of a ticket (or of one run) in append order,
// strictly after (partition, offset).
func (s *Store) Events(ctx context.Context, ticketID, runID string, afterPartition int32, afterOffset int64, limit int) (out []app.StoredEvent, err error) {
	err = s.with(ctx, func(q querier) error {
		rows, err := q.Query(ctx, `SELECT partition, "offset", envelope::text FROM ticket_events
			WHERE ticket_id = $1 AND ($2 = '' OR run_id = $2) AND (partition, "offset") > ($3, $4)
			ORDER BY partition, "offset" LIMIT $5`, ticketID, runID, afterPartition, afterOffset, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.StoredEvent, error) {
			var e app.StoredEvent
			var text string
			err := r.Scan(&e.Partition, &e.Offset, &text)
			e.Envelope = []byte(text)
			return e, err
		})
		return err
	})
	return out, err
}

// StepStats summarises the steps started in [since, until).
func (s *Store) StepStats(ctx context.Context, since, until time.Time) (out []app.StepStats, err error) {
	err = s.with(ctx, func(q querier) error {
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
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.StepStats, error) {
			var x app.StepStats
			err := r.Scan(&x.Step, &x.Count, &x.P50MS, &x.P95MS, &x.P99MS, &x.MaxMS, &x.FailureRate)
			return x, err
		})
		return err
	})
	return out, err
}

// LLMStats sums the model calls made in [since, until) by provider and model, in all and by
// UTC day.
func (s *Store) LLMStats(ctx context.Context, since, until time.Time) (models []app.LLMUsage, daily []app.LLMUsageDay, err error) {
	err = s.with(ctx, func(q querier) error {
		rows, err := q.Query(ctx, `SELECT provider, model, count(*), sum(input_tokens)::bigint, sum(output_tokens)::bigint,
				sum(cost_usd)::float8, sum(retries)::bigint, percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)
			FROM llm_calls WHERE occurred_at >= $1 AND occurred_at < $2
			GROUP BY provider, model ORDER BY sum(cost_usd) DESC, provider, model`, since, until)
		if err != nil {
			return err
		}
		models, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.LLMUsage, error) {
			var x app.LLMUsage
			err := r.Scan(&x.Provider, &x.Model, &x.Calls, &x.InputTokens, &x.OutputTokens, &x.CostUSD, &x.Retries, &x.P50LatencyMS)
			return x, err
		})
		if err != nil {
			return err
		}
		rows, err = q.Query(ctx, `SELECT to_char(date_trunc('day', occurred_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD'), provider, model,
				count(*), sum(input_tokens)::bigint, sum(output_tokens)::bigint, sum(cost_usd)::float8
			FROM llm_calls WHERE occurred_at >= $1 AND occurred_at < $2
			GROUP BY 1, provider, model ORDER BY 1, provider, model`, since, until)
		if err != nil {
			return err
		}
		daily, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.LLMUsageDay, error) {
			var x app.LLMUsageDay
			err := r.Scan(&x.Day, &x.Provider, &x.Model, &x.Calls, &x.InputTokens, &x.OutputTokens, &x.CostUSD)
			return x, err
		})
		return err
	})
	return models, daily, err
}

// Artifacts lists a run's artifacts (table run_artifacts, written by the processor).
func (s *Store) Artifacts(ctx context.Context, runID string) (out []app.Artifact, err error) {
	err = s.with(ctx, func(q querier) error {
		rows, err := q.Query(ctx, `SELECT name, size_bytes, lines, created_at FROM run_artifacts
			WHERE run_id = $1 ORDER BY created_at, name`, runID)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.Artifact, error) {
			var a app.Artifact
			err := r.Scan(&a.Name, &a.SizeBytes, &a.Lines, &a.CreatedAt)
			return a, err
		})
		return err
	})
	return out, err
}

// ArtifactContent is one artifact's content.
func (s *Store) ArtifactContent(ctx context.Context, runID, name string) (content []byte, err error) {
	err = s.with(ctx, func(q querier) error {
		return q.QueryRow(ctx, `SELECT content FROM run_artifacts WHERE run_id = $1 AND name = $2`, runID, name).Scan(&content)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, app.ErrNotFound
	}
	return content, err
}

// waitProjected waits until the projector has applied the record at pos, so the caller's
// next read sees its own write. It gives up silently at the deadline: the event is durable
// and the projection will catch up. It polls on q, the connection the write already holds:
// asking the pool for a second one while holding the ticket lock is how the pool deadlocked.
func waitProjected(ctx context.Context, q querier, topic string, pos events.Position, max time.Duration, projections *Projections) bool {
	ctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	delay := 2 * time.Millisecond
	for {
		changed := projections.Changed(pos.Partition) // before the read: a commit after it closes this one
		var next int64
		err := q.QueryRow(ctx, `SELECT coalesce(max(next_offset), -1) FROM consumer_offsets
			WHERE consumer = $1 AND topic = $2 AND partition = $3`, postgres.ProjectorConsumer, topic, pos.Partition).Scan(&next)
		if err == nil && next > pos.Offset {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-changed:
		case <-time.After(delay):
		}
		delay = min(delay*2, 50*time.Millisecond)
	}
}
