package adapters

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/auth"
)

// usedFor is how long a used jti must be remembered: until no ticket carrying it can verify.
const usedFor = auth.MaxWSTicketTTL + 2*auth.Leeway

// DBTicketUses makes WebSocket tickets single-use across every replica: it records jtis in
// ws_ticket_uses (migration 0005).
type DBTicketUses struct {
	db *pgxpool.Pool

	mu     sync.Mutex
	pruned time.Time
}

// NewDBTicketUses records in db.
func NewDBTicketUses(db *pgxpool.Pool) *DBTicketUses { return &DBTicketUses{db: db} }

// Claim records jti as used; auth.ErrTicketReused when it was used before, another error when
// the record cannot be made (the connect is then refused: fail closed).
func (u *DBTicketUses) Claim(ctx context.Context, jti string, _ time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	tag, err := u.db.Exec(ctx, `INSERT INTO ws_ticket_uses (jti, used_at) VALUES ($1, now()) ON CONFLICT (jti) DO NOTHING`, jti)
	if err != nil {
		return fmt.Errorf("record WebSocket ticket use: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return auth.ErrTicketReused
	}
	u.mu.Lock()
	prune := time.Since(u.pruned) > time.Minute
	if prune {
		u.pruned = time.Now()
	}
	u.mu.Unlock()
	if prune {
		// Best effort: a failed prune only leaves rows for the next one.
		_, _ = u.db.Exec(ctx, `DELETE FROM ws_ticket_uses WHERE used_at < now() - make_interval(secs => $1)`, usedFor.Seconds())
	}
	return nil
}

// maxRememberedTickets bounds the in-memory record. Entries leave when their ticket expires
// (30 s by default), so this is ~3,000 connects per second per replica for 30 s tickets.
const maxRememberedTickets = 100_000

var errTicketMemoryFull = errors.New("too many WebSocket tickets in flight on this replica")

// MemTicketUses is the record without a database: single use holds per replica only (a
// ticket could be used once on each replica behind a load balancer).
type MemTicketUses struct {
	mu    sync.Mutex
	used  map[string]time.Time // jti -> until when it must be remembered
	swept time.Time
}

// NewMemTicketUses is an empty in-memory record.
func NewMemTicketUses() *MemTicketUses { return &MemTicketUses{used: map[string]time.Time{}} }

// Claim is DBTicketUses.Claim for this replica only.
func (u *MemTicketUses) Claim(_ context.Context, jti string, expires time.Time) error {
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if now.Sub(u.swept) > 10*time.Second || len(u.used) >= maxRememberedTickets {
		for k, until := range u.used {
			if now.After(until) {
				delete(u.used, k)
			}
		}
		u.swept = now
	}
	if _, ok := u.used[jti]; ok {
		return auth.ErrTicketReused
	}
	if len(u.used) >= maxRememberedTickets {
		// Forgetting an unexpired jti would make its ticket reusable: refuse instead.
		return errTicketMemoryFull
	}
	u.used[jti] = expires.Add(2 * auth.Leeway)
	return nil
}
