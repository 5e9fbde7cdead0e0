// Package adapters holds all of the projector's SQL: the consumer_offsets rows that say how
// far each partition is projected, the ticket_events audit trail and the projection tables
// (tickets, runs, step_runs). app decides what an event changes; this package says how.
package adapters

import (
	"context"
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
// the records as already applied.
func (s *Store) InBatch(ctx context.Context, partition int32, fn func(app.Batch) error) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		return fn(&batch{tx: tx, topic: s.topic, partition: partition})
	})
}

// batch is one partition's transaction.
type batch struct {
	tx        pgx.Tx
	topic     string
	partition int32
}

func (b *batch) NextOffset(ctx context.Context) (int64, error) {
	var next int64 = -1
	err := b.tx.QueryRow(ctx, `SELECT next_offset FROM consumer_offsets WHERE consumer = $1 AND topic = $2 AND partition = $3 FOR UPDATE`,
		ConsumerName, b.topic, b.partition).Scan(&next)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return -1, err
	}
	return next, nil
}

func (b *batch) SetNextOffset(ctx context.Context, next int64, topicID string) error {
	// The notification is delivered when the batch commits (never for a rolled-back one).
	_, err := b.tx.Exec(ctx, `WITH moved AS (INSERT INTO consumer_offsets (consumer, topic, partition, next_offset, topic_id, updated_at)
			VALUES ($1, $2, $3, $4, $5, now())
			ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = excluded.next_offset, topic_id = excluded.topic_id, updated_at = now()
			RETURNING 1)
		SELECT pg_notify($6, $7) FROM moved`,
		ConsumerName, b.topic, b.partition, next, topicID, postgres.ProjectedChannel, strconv.Itoa(int(b.partition)))
	return err
}

func (b *batch) Record(ctx context.Context, ev events.Event, topicID string, value, headers []byte) (bool, error) {
	tag, err := b.tx.Exec(ctx, `INSERT INTO ticket_events (event_id, ticket_id, run_id, type, version, occurred_at, actor,
			topic_id, partition, "offset", envelope, headers)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING`,
		ev.ID, ev.TicketID, ev.RunID, string(ev.Type), ev.Version, ev.OccurredAt, ev.Actor,
		topicID, ev.Partition, ev.Offset, string(value), headers)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() > 0, nil
}

func (b *batch) CreateTicket(ctx context.Context, ev events.Event, d *events.TicketCreatedData) error {
	_, err := b.tx.Exec(ctx, `INSERT INTO tickets (id, title, description, repository_url, base_branch, ci_command, owner,
				status, created_at, updated_at, last_partition, last_offset)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 'IDLE', $8, $8, $9, $10) ON CONFLICT (id) DO NOTHING`,
		ev.TicketID, d.Title, d.Description, d.RepositoryURL, d.BaseBranch, d.CICommand, d.Owner, ev.OccurredAt, ev.Partition, ev.Offset)
	return err
}

func (b *batch) RequestRun(ctx context.Context, ev events.Event, d *events.ProcessingRequestedData, message, traceID string) error {
	_, err := b.tx.Exec(ctx, `INSERT INTO runs (id, ticket_id, status, reason, requested_by, requested_at, message, trace_id)
			VALUES ($1, $2, 'PENDING', $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
		ev.RunID, ev.TicketID, d.Reason, d.RequestedBy, ev.OccurredAt, message, traceID)
	return err
}

func (b *batch) TakeOverTicket(ctx context.Context, ev events.Event, status, message string) error {
	_, err := b.tx.Exec(ctx, `UPDATE tickets SET status = $2, step = '', progress = 0, message = $3, error = '',
				current_run_id = $4, updated_at = $5, last_partition = $6, last_offset = $7
			WHERE id = $1 AND status NOT IN ('PENDING', 'IN_PROGRESS')`,
		ev.TicketID, status, message, ev.RunID, ev.OccurredAt, ev.Partition, ev.Offset)
	return err
}

func (b *batch) StartRun(ctx context.Context, ev events.Event, d *events.RunStartedData) error {
	if _, err := b.tx.Exec(ctx, `UPDATE runs SET status = 'IN_PROGRESS', iteration = $2, started_at = $3 WHERE id = $1`,
		ev.RunID, d.Iteration, ev.OccurredAt); err != nil {
		return err
	}
	_, err := b.tx.Exec(ctx, `UPDATE tickets SET iteration = $2, updated_at = $3 WHERE id = $1 AND current_run_id = $4`,
		ev.TicketID, d.Iteration, ev.OccurredAt, ev.RunID)
	return err
}

func (b *batch) StartStep(ctx context.Context, ev events.Event, d *events.StepStartedData) error {
	if _, err := b.tx.Exec(ctx, `INSERT INTO step_runs (run_id, ticket_id, step, iteration, attempt, started_at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
		ev.RunID, ev.TicketID, d.Step, d.Iteration, d.Attempt, ev.OccurredAt); err != nil {
		return err
	}
	_, err := b.tx.Exec(ctx, `UPDATE runs SET status = 'IN_PROGRESS', step = $2, progress = $3, iteration = $4 WHERE id = $1`,
		ev.RunID, d.Step, d.Progress, d.Iteration)
	return err
}

func (b *batch) CompleteStep(ctx context.Context, ev events.Event, d *events.StepCompletedData) error {
	_, err := b.tx.Exec(ctx, `UPDATE step_runs SET finished_at = $5, duration_ms = $6, outcome = $7, error = $8
			WHERE run_id = $1 AND iteration = $2 AND step = $3 AND attempt = $4`,
		ev.RunID, d.Iteration, d.Step, d.Attempt, ev.OccurredAt, d.DurationMS, d.Outcome, d.Error)
	return err
}

func (b *batch) FinishRun(ctx context.Context, ev events.Event, f app.Finish) error {
	_, err := b.tx.Exec(ctx, `UPDATE runs SET status = $2, message = $3, error = $4, branch = $5, finished_at = $6,
			progress = CASE WHEN $2 = 'COMPLETED' THEN 100 ELSE progress END,
			step = CASE WHEN $2 = 'COMPLETED' THEN 'await_validation' ELSE step END
		WHERE id = $1`, ev.RunID, f.Status, f.Message, f.Error, f.Branch, ev.OccurredAt)
	return err
}

func (b *batch) RejectRun(ctx context.Context, ev events.Event, reason, message string) error {
	_, err := b.tx.Exec(ctx, `UPDATE runs SET status = 'REJECTED', error = $2, message = $3, finished_at = $4 WHERE id = $1`,
		ev.RunID, reason, message, ev.OccurredAt)
	return err
}

func (b *batch) ValidateRun(ctx context.Context, ev events.Event) error {
	_, err := b.tx.Exec(ctx, `UPDATE runs SET status = 'VALIDATED' WHERE id = $1`, ev.RunID)
	return err
}

func (b *batch) UpdateTicket(ctx context.Context, ev events.Event, u workflow.Update) error {
	_, err := b.tx.Exec(ctx, `UPDATE tickets SET status = $3, step = CASE WHEN $4 = '' THEN step ELSE $4 END,
			progress = CASE WHEN $3 IN ('FAILED', 'CANCELLED') THEN progress ELSE $5 END,
			message = $6, error = $7, updated_at = $8, last_partition = $9, last_offset = $10
		WHERE id = $1 AND current_run_id = $2`,
		ev.TicketID, ev.RunID, string(u.Status), u.Step, u.Progress, u.Message, u.Error, ev.OccurredAt, ev.Partition, ev.Offset)
	return err
}
