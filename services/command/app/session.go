package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// session is the one PostgreSQL connection a write holds from start to answer. The locks it
// takes are session-level advisory locks on this connection, and every read the locks guard
// runs on it too: a write never asks the pool for a second connection while it holds one
// (that wait is what deadlocked the pool). A process that dies drops the connection, and
// PostgreSQL releases its locks at once.
//
// The ticket lock is a session lock rather than pg_advisory_xact_lock because it must stay
// held across two commits: the idempotency claim (durable before the append) and the answer
// (after it); a transaction-scoped lock would be released by the first one.
type session struct {
	conn         *pgxpool.Conn
	lockedTicket string
	lockedKey    *idemKey
	broken       bool
}

func advisoryKey(kind, id string) string { return "ticketflow:" + kind + ":" + id }

// lockName is unambiguous whatever the subject and key contain.
func (k *idemKey) lockName() string { return fmt.Sprintf("%d:%s:%s", len(k.subject), k.subject, k.key) }

// lockTicket waits (up to ctx) for the ticket's lock: writes to one ticket are serialised
// across command replicas, so two concurrent starts cannot both pass the "no active run" check.
func (s *session) lockTicket(ctx context.Context, ticketID string) error {
	if _, err := s.conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, advisoryKey("ticket", ticketID)); err != nil {
		s.broken = true // a cancelled lock wait may or may not have been granted
		return fmt.Errorf("lock ticket: %w", err)
	}
	s.lockedTicket = ticketID
	return nil
}

// tryLockKey takes the key's lock if no live request holds it. Held for the whole request,
// it tells a concurrent duplicate (409 request_in_progress) from a retry after a crash (the
// claimer's connection, and so the lock, is gone).
func (s *session) tryLockKey(ctx context.Context, k *idemKey) (bool, error) {
	var ok bool
	if err := s.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`,
		advisoryKey("idempotency", k.lockName())).Scan(&ok); err != nil {
		s.broken = true
		return false, fmt.Errorf("lock idempotency key: %w", err)
	}
	if ok {
		s.lockedKey = k
	}
	return ok, nil
}

// kill drops the connection without unlocking, as a dying process would: PostgreSQL
// releases its locks.
func (s *session) kill() {
	if s.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.conn.Conn().Close(ctx)
	s.conn.Release()
	s.conn = nil
}

// release unlocks and returns the connection, or closes it when unlocking is not certain.
func (s *session) release() {
	if s.conn == nil {
		return
	}
	if s.broken {
		s.kill()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s.lockedTicket != "" {
		if _, err := s.conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, advisoryKey("ticket", s.lockedTicket)); err != nil {
			s.kill()
			return
		}
	}
	if s.lockedKey != nil {
		if _, err := s.conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`,
			advisoryKey("idempotency", s.lockedKey.lockName())); err != nil {
			s.kill()
			return
		}
	}
	s.conn.Release()
	s.conn = nil
}

// errSessionLost: the connection was dropped mid-request (only fault injection does that
// while the request goes on).
var errSessionLost = errors.New("database session lost")

// claim is an idempotency_keys row.
type claim struct {
	hash      string
	status    *int   // set once answered
	response  []byte // the answer, once answered
	planned   bool   // the row records what the request appends (pending rows of older versions do not)
	eventIDs  []string
	partition int32
	offset    int64
	plannedSt int
	plannedRe []byte
}

func (s *session) loadClaim(ctx context.Context, k *idemKey) (*claim, error) {
	var c claim
	var partition *int32
	var offset *int64
	var plannedSt *int
	var response, plannedRe *string
	err := s.conn.QueryRow(ctx, `SELECT request_hash, status, response::text, event_ids, log_partition, log_offset,
			planned_status, planned_response::text
		FROM idempotency_keys WHERE subject = $1 AND key = $2`, k.subject, k.key).
		Scan(&c.hash, &c.status, &response, &c.eventIDs, &partition, &offset, &plannedSt, &plannedRe)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read idempotency key: %w", err)
	}
	if response != nil {
		c.response = []byte(*response)
	}
	if c.eventIDs != nil && partition != nil && offset != nil && plannedSt != nil && plannedRe != nil {
		c.planned = true
		c.partition, c.offset, c.plannedSt, c.plannedRe = *partition, *offset, *plannedSt, []byte(*plannedRe)
	}
	return &c, nil
}

// savePlan records, durably and before the append, what this attempt will append and
// answer, and where in the log to look for it.
func (s *session) savePlan(ctx context.Context, k *idemKey, ticketID string, eventIDs []string, partition int32, offset int64, status int, body []byte) error {
	_, err := s.conn.Exec(ctx, `INSERT INTO idempotency_keys (subject, key, request_hash, ticket_id, event_ids,
			log_partition, log_offset, planned_status, planned_response)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (subject, key) DO UPDATE SET ticket_id = $4, event_ids = $5, log_partition = $6, log_offset = $7,
			planned_status = $8, planned_response = $9, updated_at = now()
		WHERE idempotency_keys.status IS NULL AND idempotency_keys.request_hash = $3`,
		k.subject, k.key, k.hash, ticketID, eventIDs, partition, offset, status, json.RawMessage(body))
	if err != nil {
		return fmt.Errorf("claim idempotency key: %w", err)
	}
	return nil
}

// answer stores the final answer of the key (a 2xx after the append, or a 4xx decided
// without appending); a retry replays it.
func (s *session) answer(ctx context.Context, k *idemKey, status int, body []byte) error {
	if s.conn == nil {
		return errSessionLost
	}
	_, err := s.conn.Exec(ctx, `INSERT INTO idempotency_keys (subject, key, request_hash, status, response)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (subject, key) DO UPDATE SET status = $4, response = $5, updated_at = now()
		WHERE idempotency_keys.status IS NULL AND idempotency_keys.request_hash = $3`,
		k.subject, k.key, k.hash, status, json.RawMessage(body))
	if err != nil {
		return fmt.Errorf("store idempotent answer: %w", err)
	}
	return nil
}

// forget frees the key after a failure that appended nothing, so a retry starts afresh.
func (s *session) forget(ctx context.Context, k *idemKey) error {
	if s.conn == nil {
		return errSessionLost
	}
	_, err := s.conn.Exec(ctx, `DELETE FROM idempotency_keys WHERE subject = $1 AND key = $2 AND status IS NULL`, k.subject, k.key)
	return err
}
