package adapters

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/ticketflow/ticketflow/libs/postgres"
	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
)

// TestProjectionsWakeTheirPartitionsWaiters: a notification on the projector's channel
// (what its batch commit sends) closes the waiters' channel of that partition only; after
// the listener's connection is killed it reconnects and wakes everyone once, so a commit
// missed meanwhile is looked at again.
func TestProjectionsWakeTheirPartitionsWaiters(t *testing.T) {
	url := pgtest.NewDatabase(t)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := NewProjections()
	// Registered before the listener starts: its first wake-up must find a waiter.
	listening := p.Changed(3)
	listenCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); p.Listen(listenCtx, cfg, slog.New(slog.DiscardHandler)) }()
	defer func() { stop(); <-done }()

	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	// The first wake-up is the listener's own, once it listens.
	select {
	case <-listening:
	case <-ctx.Done():
		t.Fatal("the listener never started listening")
	}
	three, four := p.Changed(3), p.Changed(4)
	if _, err := db.Exec(ctx, `SELECT pg_notify($1, '3')`, postgres.ProjectedChannel); err != nil {
		t.Fatal(err)
	}
	select {
	case <-three:
	case <-ctx.Done():
		t.Fatal("partition 3's waiters were not woken")
	}
	select {
	case <-four:
		t.Fatal("partition 4's waiters were woken by partition 3's commit")
	case <-time.After(200 * time.Millisecond):
	}

	if _, err := db.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-four: // the reconnect's wake-up of every partition
	case <-ctx.Done():
		t.Fatal("the listener did not come back after its connection was killed")
	}
}
