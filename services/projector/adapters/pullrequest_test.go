package adapters

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
	"github.com/ticketflow/ticketflow/services/projector/app"
)

// PullRequestOpened puts the PR's URL on its run and on the ticket.
func TestPullRequestOpenedSetsTheRunsAndTicketsURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := NewStore(db, "ticket-events")
	ev := func(run string, p events.Payload) events.Event {
		return events.Event{Envelope: events.MustNew("t1", run, "processor", p)}
	}
	const url = "https://github.com/acme/demo/pull/7"
	err = s.InBatch(ctx, 0, func(b app.Batch) error {
		created := &events.TicketCreatedData{Title: "x", RepositoryURL: "https://github.com/acme/demo", BaseBranch: "main", Owner: "alice"}
		if err := b.CreateTicket(ctx, ev("", created), created); err != nil {
			return err
		}
		req := &events.ProcessingRequestedData{RequestedBy: "alice", Reason: "start"}
		if err := b.RequestRun(ctx, ev("r1", req), req, "pending", ""); err != nil {
			return err
		}
		pr := &events.PullRequestOpenedData{URL: url, Number: 7, Forge: "github"}
		return b.SetPullRequest(ctx, ev("r1", pr), pr)
	})
	if err != nil {
		t.Fatal(err)
	}
	var run, ticket string
	if err := db.QueryRow(ctx, `SELECT r.pull_request_url, t.pull_request_url FROM runs r JOIN tickets t ON t.id = r.ticket_id WHERE r.id = 'r1'`).
		Scan(&run, &ticket); err != nil {
		t.Fatal(err)
	}
	if run != url || ticket != url {
		t.Errorf("run %q, ticket %q, want %q", run, ticket, url)
	}
}
