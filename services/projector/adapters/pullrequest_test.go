package adapters

import (
	"testing"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/services/projector/app"
)

// PullRequestOpened puts the PR's URL on its run and on the ticket.
func TestPullRequestOpenedSetsTheRunsAndTicketsURL(t *testing.T) {
	ctx, s, db := testStore(t)
	const url = "https://github.com/acme/demo/pull/7"
	err := s.InBatch(ctx, 0, func(b app.Batch) error {
		created := &events.TicketCreatedData{Title: "x", RepositoryURL: "https://github.com/acme/demo", BaseBranch: "main", Owner: "alice"}
		if err := b.CreateTicket(ctx, processorEvent("", created), created); err != nil {
			return err
		}
		req := &events.ProcessingRequestedData{RequestedBy: "alice", Reason: "start"}
		if err := b.RequestRun(ctx, processorEvent("r1", req), req, "pending", ""); err != nil {
			return err
		}
		pr := &events.PullRequestOpenedData{URL: url, Number: 7, Forge: "github"}
		return b.SetPullRequest(ctx, processorEvent("r1", pr), pr)
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
