// Package adapters holds all of the projector's SQL: the consumer_offsets rows that say how
// far each partition is projected, the ticket_events audit trail and the projection tables
// (tickets, runs, step_runs). app decides what an event changes; this package says how.
package adapters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/postgres"
	"github.com/ticketflow/ticketflow/libs/workflow"
	"github.com/ticketflow/ticketflow/services/projector/app"
)

// ConsumerName is the projector's consumer_offsets key; the command service reads the same
// rows (by the same constant) to wait until its writes are projected.
const ConsumerName = postgres.ProjectorConsumer

// Store is the projector's database for one topic.
type Store struct {
	db    *pgxpool.Pool
	topic string
}

// NewStore keeps the projection of topic in db.
func NewStore(db *pgxpool.Pool, topic string) *Store { return &Store{db: db, topic: topic} }

var _ app.Store = (*Store)(nil)

// Offsets are the next offsets to project, by partition.
func (s *Store) Offsets(ctx context.Context) (map[int32]int64, error) {
	rows, err := s.db.Query(ctx, `SELECT partition, next_offset FROM consumer_offsets WHERE consumer = $1 AND topic = $2`,
		ConsumerName, s.topic)
	if err != nil {
		return nil, fmt.Errorf("load stored offsets: %w", err)
	}
	next := map[int32]int64{}
	for rows.Next() {
		var part int32
		var off int64
		if err := rows.Scan(&part, &off); err != nil {
			return nil, err
		}
		next[part] = off
	}
	return next, rows.Err()
}

// StaleOffsets counts the stored offsets written for another topic id than topicID.
func (s *Store) StaleOffsets(ctx context.Context, topicID string) (int, error) {
	var stale int
	err := s.db.QueryRow(ctx, `SELECT count(*) FROM consumer_offsets WHERE consumer = $1 AND topic = $2 AND topic_id <> $3`,
		ConsumerName, s.topic, topicID).Scan(&stale)
	if err != nil {
		return 0, fmt.Errorf("check topic identity: %w", err)
	}
	return stale, nil
}

// ForgetOffsets deletes the topic's stored offsets: it is projected again from its start.
func (s *Store) ForgetOffsets(ctx context.Context) error {
	_, err := s.db.Exec(ctx, `DELETE FROM consumer_offsets WHERE consumer = $1 AND topic = $2`, ConsumerName, s.topic)
	return err
}

// InBatch runs fn in one transaction that holds the lock of partition's offset row: during
// a rebalance two replicas may briefly hold the same partition; the second waits, then sees
// the records as already applied. The audit rows go in one round trip, and the projection
// changes are queued and sent in one more with the next offset (SetNextOffset, or at the
// end): a batch costs a handful of round trips whatever its size, not a few per event.
func (s *Store) InBatch(ctx context.Context, partition int32, fn func(app.Batch) error) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		b := &batch{conn: tx, tx: &pipelinedTx{}, topic: s.topic, partition: partition}
		if err := fn(b); err != nil {
			return err
		}
		return b.tx.flush(ctx, tx) // what fn queued after its SetNextOffset, if it set one
	})
}

// batch is one partition's transaction.
type batch struct {
	conn pgx.Tx // reads and the audit rows, at once
	// tx queues the projection changes, which need no answer, to send them together.
	tx        *pipelinedTx
	topic     string
	partition int32
}

// pipelinedTx queues statements of the batch's transaction; flush sends them in order in one
// round trip (each still sees the effects of those before it).
type pipelinedTx struct{ queued pgx.Batch }

// Exec queues the statement. It has no command tag to return: a change may not depend on
// another's result in Go (put that in SQL); its error, if any, is the flush's.
func (p *pipelinedTx) Exec(_ context.Context, sql string, args ...any) error {
	p.queued.Queue(sql, args...)
	return nil
}

func (p *pipelinedTx) flush(ctx context.Context, tx pgx.Tx) error {
	if p.queued.Len() == 0 {
		return nil
	}
	err := tx.SendBatch(ctx, &p.queued).Close()
	p.queued = pgx.Batch{}
	if err != nil {
		return fmt.Errorf("apply the projection changes: %w", err)
	}
	return nil
}

func (b *batch) NextOffset(ctx context.Context) (int64, error) {
	var next int64 = -1
	err := b.conn.QueryRow(ctx, `SELECT next_offset FROM consumer_offsets WHERE consumer = $1 AND topic = $2 AND partition = $3 FOR UPDATE`,
		ConsumerName, b.topic, b.partition).Scan(&next)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return -1, err
	}
	return next, nil
}

func (b *batch) SetNextOffset(ctx context.Context, next int64, topicID string) error {
	if err := b.tx.flush(ctx, b.conn); err != nil {
		return err
	}
	// The notification is delivered when the batch commits (never for a rolled-back one).
	_, err := b.conn.Exec(ctx, `WITH moved AS (INSERT INTO consumer_offsets (consumer, topic, partition, next_offset, topic_id, updated_at)
			VALUES ($1, $2, $3, $4, $5, now())
			ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = excluded.next_offset, topic_id = excluded.topic_id, updated_at = now()
			RETURNING 1)
		SELECT pg_notify($6, $7) FROM moved`,
		ConsumerName, b.topic, b.partition, next, topicID, postgres.ProjectedChannel, strconv.Itoa(int(b.partition)))
	return err
}

func (b *batch) Record(ctx context.Context, topicID string, rows []app.AuditRow) ([]bool, error) {
	var q pgx.Batch
	for _, row := range rows {
		ev := row.Event
		q.Queue(`INSERT INTO ticket_events (event_id, ticket_id, run_id, type, version, occurred_at, actor,
				topic_id, partition, "offset", envelope, headers)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING`,
			ev.ID, ev.TicketID, ev.RunID, string(ev.Type), ev.Version, ev.OccurredAt, ev.Actor,
			topicID, ev.Partition, ev.Offset, string(row.Value), row.Headers)
	}
	results := b.conn.SendBatch(ctx, &q)
	fresh := make([]bool, len(rows))
	for i := range rows {
		tag, err := results.Exec()
		if err != nil {
			_ = results.Close()
			return nil, fmt.Errorf("record event %s: %w", rows[i].Event.ID, err)
		}
		fresh[i] = tag.RowsAffected() > 0
	}
	if err := results.Close(); err != nil {
		return nil, fmt.Errorf("record events: %w", err)
	}
	return fresh, nil
}

func (b *batch) CreateTicket(ctx context.Context, ev events.Event, d *events.TicketCreatedData) error {
	err := b.tx.Exec(ctx, `INSERT INTO tickets (id, title, description, repository_url, base_branch, ci_command, owner,
				status, created_at, updated_at, last_partition, last_offset)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 'IDLE', $8, $8, $9, $10) ON CONFLICT (id) DO NOTHING`,
		ev.TicketID, d.Title, d.Description, d.RepositoryURL, d.BaseBranch, d.CICommand, d.Owner, ev.OccurredAt, ev.Partition, ev.Offset)
	return err
}

func (b *batch) RequestRun(ctx context.Context, ev events.Event, d *events.ProcessingRequestedData, message, traceID string) error {
	err := b.tx.Exec(ctx, `INSERT INTO runs (id, ticket_id, status, reason, requested_by, requested_at, message, trace_id)
			VALUES ($1, $2, 'PENDING', $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
		ev.RunID, ev.TicketID, d.Reason, d.RequestedBy, ev.OccurredAt, message, traceID)
	return err
}

func (b *batch) TakeOverTicket(ctx context.Context, ev events.Event, status, message string) error {
	err := b.tx.Exec(ctx, `UPDATE tickets SET status = $2, step = '', progress = 0, message = $3, error = '',
				current_run_id = $4, updated_at = $5, last_partition = $6, last_offset = $7
			WHERE id = $1 AND status NOT IN ('PENDING', 'IN_PROGRESS')`,
		ev.TicketID, status, message, ev.RunID, ev.OccurredAt, ev.Partition, ev.Offset)
	return err
}

func (b *batch) StartRun(ctx context.Context, ev events.Event, d *events.RunStartedData) error {
	if err := b.tx.Exec(ctx, `UPDATE runs SET status = 'IN_PROGRESS', iteration = $2, started_at = $3 WHERE id = $1`,
		ev.RunID, d.Iteration, ev.OccurredAt); err != nil {
		return err
	}
	err := b.tx.Exec(ctx, `UPDATE tickets SET iteration = $2, updated_at = $3 WHERE id = $1 AND current_run_id = $4`,
		ev.TicketID, d.Iteration, ev.OccurredAt, ev.RunID)
	return err
}

func (b *batch) StartStep(ctx context.Context, ev events.Event, d *events.StepStartedData) error {
	if err := b.tx.Exec(ctx, `INSERT INTO step_runs (run_id, ticket_id, step, iteration, attempt, started_at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
		ev.RunID, ev.TicketID, d.Step, d.Iteration, d.Attempt, ev.OccurredAt); err != nil {
		return err
	}
	err := b.tx.Exec(ctx, `UPDATE runs SET status = 'IN_PROGRESS', step = $2, progress = $3, iteration = $4 WHERE id = $1`,
		ev.RunID, d.Step, d.Progress, d.Iteration)
	return err
}

func (b *batch) CompleteStep(ctx context.Context, ev events.Event, d *events.StepCompletedData) error {
	err := b.tx.Exec(ctx, `UPDATE step_runs SET finished_at = $5, duration_ms = $6, outcome = $7, error = $8
			WHERE run_id = $1 AND iteration = $2 AND step = $3 AND attempt = $4`,
		ev.RunID, d.Iteration, d.Step, d.Attempt, ev.OccurredAt, d.DurationMS, d.Outcome, d.Error)
	return err
}

func (b *batch) FinishRun(ctx context.Context, ev events.Event, f app.Finish) error {
	err := b.tx.Exec(ctx, `UPDATE runs SET status = $2, message = $3, error = $4, branch = $5, finished_at = $6,
			progress = CASE WHEN $2 = 'COMPLETED' THEN 100 ELSE progress END,
			step = CASE WHEN $2 = 'COMPLETED' THEN 'await_validation' ELSE step END
		WHERE id = $1`, ev.RunID, f.Status, f.Message, f.Error, f.Branch, ev.OccurredAt)
	return err
}

// RecordLLMCall is only reached once per event id (Record dedupes the audit trail first); the
// ON CONFLICT guard keeps the totals right if that ever changes.
func (b *batch) RecordLLMCall(ctx context.Context, ev events.Event, d *events.LLMCallCompletedData) error {
	return b.tx.Exec(ctx, `WITH call AS (
			INSERT INTO llm_calls (event_id, run_id, ticket_id, iteration, agent_step, provider, model, input_tokens,
				output_tokens, cost_usd, latency_ms, retries, occurred_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (event_id) DO NOTHING
			RETURNING run_id, input_tokens, output_tokens, cost_usd)
		UPDATE runs SET llm_calls = llm_calls + 1, llm_input_tokens = llm_input_tokens + call.input_tokens,
			llm_output_tokens = llm_output_tokens + call.output_tokens, llm_cost_usd = llm_cost_usd + call.cost_usd
		FROM call WHERE runs.id = call.run_id`,
		ev.ID, ev.RunID, ev.TicketID, d.Iteration, d.AgentStep, d.Provider, d.Model, d.InputTokens, d.OutputTokens, d.CostUSD,
		d.LatencyMS, d.Retries, ev.OccurredAt)
}

func (b *batch) CountToolCall(ctx context.Context, ev events.Event) error {
	err := b.tx.Exec(ctx, `UPDATE runs SET tool_calls = tool_calls + 1 WHERE id = $1`, ev.RunID)
	return err
}

func (b *batch) SetRepositoryConfig(ctx context.Context, ev events.Event, d *events.RepositoryConfigLoadedData) error {
	cfg, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return b.tx.Exec(ctx, `UPDATE runs SET repository_config = $2 WHERE id = $1`, ev.RunID, cfg)
}

func (b *batch) SetPullRequest(ctx context.Context, ev events.Event, d *events.PullRequestOpenedData) error {
	if err := b.tx.Exec(ctx, `UPDATE runs SET pull_request_url = $2 WHERE id = $1`, ev.RunID, d.URL); err != nil {
		return err
	}
	return b.tx.Exec(ctx, `UPDATE tickets SET pull_request_url = $2 WHERE id = $1`, ev.TicketID, d.URL)
}

func (b *batch) RejectRun(ctx context.Context, ev events.Event, reason, message string) error {
	err := b.tx.Exec(ctx, `UPDATE runs SET status = 'REJECTED', error = $2, message = $3, finished_at = $4 WHERE id = $1`,
		ev.RunID, reason, message, ev.OccurredAt)
	return err
}

func (b *batch) ValidateRun(ctx context.Context, ev events.Event) error {
	err := b.tx.Exec(ctx, `UPDATE runs SET status = 'VALIDATED' WHERE id = $1`, ev.RunID)
	return err
}

func (b *batch) UpdateTicket(ctx context.Context, ev events.Event, u workflow.Update) error {
	err := b.tx.Exec(ctx, `UPDATE tickets SET status = $3, step = CASE WHEN $4 = '' THEN step ELSE $4 END,
			progress = CASE WHEN $3 IN ('FAILED', 'CANCELLED') THEN progress ELSE $5 END,
			message = $6, error = $7, updated_at = $8, last_partition = $9, last_offset = $10
		WHERE id = $1 AND current_run_id = $2`,
		ev.TicketID, ev.RunID, string(u.Status), u.Step, u.Progress, u.Message, u.Error, ev.OccurredAt, ev.Partition, ev.Offset)
	return err
}
