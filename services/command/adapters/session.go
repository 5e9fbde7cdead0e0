package adapters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/services/command/app"
)

// Session is the one PostgreSQL connection a write holds from start to answer. The locks it
// takes are session-level advisory locks on this connection, and every read the locks guard
// runs on it too: a write never asks the pool for a second connection while it holds one
// (that wait is what deadlocked the pool). A process that dies drops the connection, and
// PostgreSQL releases its locks at once.
//
// The ticket lock is a session lock rather than pg_advisory_xact_lock because it must stay
// held across two commits: the idempotency claim (durable before the append) and the answer
// (after it); a transaction-scoped lock would be released by the first one.
type Session struct {
	conn         *pgxpool.Conn
	topic        string
	projections  *Projections
	lockedTicket string
	lockedKey    *app.IdemKey
	broken       bool
}

func advisoryKey(kind, id string) string { return "ticketflow:" + kind + ":" + id }

// lockName is unambiguous whatever the subject and key contain.
func lockName(k app.IdemKey) string { return fmt.Sprintf("%d:%s:%s", len(k.Subject), k.Subject, k.Key) }

// LockTicket waits (up to ctx) for the ticket's lock: writes to one ticket are serialised
// across command replicas, so two concurrent starts cannot both pass the "no active run" check.
func (s *Session) LockTicket(ctx context.Context, ticketID string) error {
	if _, err := s.conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, advisoryKey("ticket", ticketID)); err != nil {
		s.broken = true // a cancelled lock wait may or may not have been granted
		return fmt.Errorf("lock ticket: %w", err)
	}
	s.lockedTicket = ticketID
	return nil
}

// TryLockKey takes the key's lock if no live request holds it. Held for the whole request,
// it tells a concurrent duplicate (409 request_in_progress) from a retry after a crash (the
// claimer's connection, and so the lock, is gone).
func (s *Session) TryLockKey(ctx context.Context, k app.IdemKey) (bool, error) {
	var ok bool
	if err := s.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`,
		advisoryKey("idempotency", lockName(k))).Scan(&ok); err != nil {
		s.broken = true
		return false, fmt.Errorf("lock idempotency key: %w", err)
	}
	if ok {
		s.lockedKey = &k
	}
	return ok, nil
}

// Kill drops the connection without unlocking, as a dying process would: PostgreSQL
// releases its locks.
func (s *Session) Kill() {
	if s.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.conn.Conn().Close(ctx)
	s.conn.Release()
	s.conn = nil
}

// Release unlocks and returns the connection, or closes it when unlocking is not certain.
func (s *Session) Release() {
	if s.conn == nil {
		return
	}
	if s.broken {
		s.Kill()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s.lockedTicket != "" {
		if _, err := s.conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, advisoryKey("ticket", s.lockedTicket)); err != nil {
			s.Kill()
			return
		}
	}
	if s.lockedKey != nil {
		if _, err := s.conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`,
			advisoryKey("idempotency", lockName(*s.lockedKey))); err != nil {
			s.Kill()
			return
		}
	}
	s.conn.Release()
	s.conn = nil
}

// errSessionLost: the connection was dropped mid-request (only fault injection does that
// while the request goes on).
var errSessionLost = errors.New("database session lost")

// LoadClaim is the key's idempotency_keys row, nil if none.
func (s *Session) LoadClaim(ctx context.Context, k app.IdemKey) (*app.Claim, error) {
	var c app.Claim
	var partition *int32
	var offset *int64
	var plannedSt *int
	var response, plannedRe *string
	err := s.conn.QueryRow(ctx, `SELECT request_hash, status, response::text, event_ids, log_partition, log_offset,
			planned_status, planned_response::text
		FROM idempotency_keys WHERE subject = $1 AND key = $2`, k.Subject, k.Key).
		Scan(&c.Hash, &c.Status, &response, &c.EventIDs, &partition, &offset, &plannedSt, &plannedRe)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read idempotency key: %w", err)
	}
	if response != nil {
		c.Response = []byte(*response)
	}
	if c.EventIDs != nil && partition != nil && offset != nil && plannedSt != nil && plannedRe != nil {
		c.Planned = true
		c.Partition, c.Offset, c.PlannedSt, c.PlannedRe = *partition, *offset, *plannedSt, []byte(*plannedRe)
	}
	return &c, nil
}

// SavePlan records, durably and before the append, what this attempt will append and
// answer, and where in the log to look for it.
func (s *Session) SavePlan(ctx context.Context, k app.IdemKey, ticketID string, eventIDs []string, partition int32, offset int64, status int, body []byte) error {
	_, err := s.conn.Exec(ctx, `INSERT INTO idempotency_keys (subject, key, request_hash, ticket_id, event_ids,
			log_partition, log_offset, planned_status, planned_response)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (subject, key) DO UPDATE SET ticket_id = $4, event_ids = $5, log_partition = $6, log_offset = $7,
			planned_status = $8, planned_response = $9, updated_at = now()
		WHERE idempotency_keys.status IS NULL AND idempotency_keys.request_hash = $3`,
		k.Subject, k.Key, k.Hash, ticketID, eventIDs, partition, offset, status, json.RawMessage(body))
	if err != nil {
		return fmt.Errorf("claim idempotency key: %w", err)
	}
	return nil
}

// Answer stores the final answer of the key (a 2xx after the append, or a 4xx decided
// without appending); a retry replays it.
func (s *Session) Answer(ctx context.Context, k app.IdemKey, status int, body []byte) error {
	if s.conn == nil {
		return errSessionLost
	}
	_, err := s.conn.Exec(ctx, `INSERT INTO idempotency_keys (subject, key, request_hash, status, response)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (subject, key) DO UPDATE SET status = $4, response = $5, updated_at = now()
		WHERE idempotency_keys.status IS NULL AND idempotency_keys.request_hash = $3`,
		k.Subject, k.Key, k.Hash, status, json.RawMessage(body))
	if err != nil {
		return fmt.Errorf("store idempotent answer: %w", err)
	}
	return nil
}

// Forget frees the key after a failure that appended nothing, so a retry starts afresh.
func (s *Session) Forget(ctx context.Context, k app.IdemKey) error {
	if s.conn == nil {
		return errSessionLost
	}
	_, err := s.conn.Exec(ctx, `DELETE FROM idempotency_keys WHERE subject = $1 AND key = $2 AND status IS NULL`, k.Subject, k.Key)
	return err
}

// Ticket reads a ticket on this connection, under the locks it holds.
func (s *Session) Ticket(ctx context.Context, id string) (app.Ticket, error) {
	if s.conn == nil {
		return app.Ticket{}, errSessionLost
	}
	return ticketOn(ctx, s.conn, id)
}

// WaitProjected waits (see waitProjected) on this connection.
func (s *Session) WaitProjected(ctx context.Context, pos events.Position, max time.Duration) bool {
	if s.conn == nil {
		return false
	}
	return waitProjected(ctx, s.conn, s.topic, pos, max, s.projections)
}

// Alive is false once the connection was dropped.
func (s *Session) Alive() bool { return s.conn != nil }
