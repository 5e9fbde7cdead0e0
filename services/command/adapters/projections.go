package adapters

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/ticketflow/ticketflow/libs/postgres"
)

// Projections tells the writes waiting for their event to be projected (waitProjected)
// that the projector committed a batch: it LISTENs on postgres.ProjectedChannel on a
// connection of its own (outside the pool, which it would shrink). Waiters still poll, more
// slowly, so a notification lost while the listener reconnects costs latency, not a wait.
type Projections struct {
	mu      sync.Mutex
	changed map[int32]chan struct{} // by partition: a batch commit wakes only its waiters
}

func NewProjections() *Projections { return &Projections{changed: map[int32]chan struct{}{}} }

// Changed is closed at the next notification for partition (nil Projections: never).
func (p *Projections) Changed(partition int32) <-chan struct{} {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ch, ok := p.changed[partition]
	if !ok {
		ch = make(chan struct{})
		p.changed[partition] = ch
	}
	return ch
}

// notify wakes the waiters of partition, or of every partition when all is true.
func (p *Projections) notify(partition int32, all bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for part, ch := range p.changed {
		if all || part == partition {
			close(ch)
			delete(p.changed, part)
		}
	}
}

// Listen keeps a listening connection until ctx ends, reconnecting with a backoff.
func (p *Projections) Listen(ctx context.Context, cfg *pgx.ConnConfig, log *slog.Logger) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := p.listenOnce(ctx, cfg)
		if ctx.Err() != nil {
			return
		}
		log.Warn("projection notifications lost: writes poll until the listener reconnects", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (p *Projections) listenOnce(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{postgres.ProjectedChannel}.Sanitize()); err != nil {
		return err
	}
	p.notify(0, true) // anything committed before LISTEN took effect: let waiters look again
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		partition, err := strconv.ParseInt(n.Payload, 10, 32)
		p.notify(int32(partition), err != nil)
	}
}
