package app

import (
	"context"
	"errors"
	"time"

	"github.com/ticketflow/ticketflow/libs/cursor"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/repourl"
)

// The read use cases: the projection as the actor may see it.

// repositoryLookupTimeout bounds the DNS lookup of a new ticket's repository host: a host that
// does not answer in time is accepted, the processor checks again before it connects.
const repositoryLookupTimeout = 2 * time.Second

// admitRepository applies the repository policy: 422 with the reason (never the addresses a
// name resolved to) when the ticket's repository may not be used.
func (a *Application) admitRepository(ctx context.Context, url string) error {
	if url == "" {
		return nil // a ticket without a repository is allowed; the real executor refuses to run it
	}
	ctx, cancel := context.WithTimeout(ctx, repositoryLookupTimeout)
	defer cancel()
	err := a.repos.Admit(ctx, url)
	var refused *repourl.Error
	if errors.As(err, &refused) {
		if refused.Detail != "" {
			a.logger.Info("repository refused at ticket creation", "reason", refused.Reason, "detail", refused.Detail)
		}
		return httpx.Invalid("%v", refused)
	}
	return err
}

// Tickets lists the actor's tickets (an admin's: owner's, or everyone's when owner is ""),
// newest first, of one status unless status is "".
func (a *Application) Tickets(ctx context.Context, actor Actor, owner, status string, limit int) ([]Ticket, error) {
	if !actor.Admin {
		owner = actor.Subject
	}
	if limit < 1 || limit > 500 {
		return nil, httpx.Invalid("limit must be between 1 and 500")
	}
	tickets, err := a.store.Tickets(ctx, owner, status, limit)
	if err != nil {
		return nil, dbError(err)
	}
	if tickets == nil {
		tickets = []Ticket{}
	}
	return tickets, nil
}

// Ticket is a ticket the actor may see: 404 if unknown, 403 if not theirs.
func (a *Application) Ticket(ctx context.Context, actor Actor, id string) (Ticket, error) {
	if id == "" || len(id) > 100 {
		return Ticket{}, httpx.Invalid("ticket id must be 1 to 100 characters")
	}
	return visibleOn(ctx, a.store, actor, id)
}

// Runs are the runs of a ticket the actor may see, newest first.
func (a *Application) Runs(ctx context.Context, actor Actor, ticketID string) ([]Run, error) {
	t, err := a.Ticket(ctx, actor, ticketID)
	if err != nil {
		return nil, err
	}
	runs, err := a.store.Runs(ctx, t.ID)
	if err != nil {
		return nil, dbError(err)
	}
	if runs == nil {
		runs = []Run{}
	}
	return runs, nil
}

// EventPage selects part of an audit trail: the events after the cursor After ("" from the
// start), at most Limit of them (1 to 5000), or all of them.
type EventPage struct {
	After string
	Limit int
	All   bool
}

// TicketEvents is the audit trail of a ticket the actor may see.
func (a *Application) TicketEvents(ctx context.Context, actor Actor, ticketID string, page EventPage) ([]StoredEvent, error) {
	t, err := a.Ticket(ctx, actor, ticketID)
	if err != nil {
		return nil, err
	}
	return a.events(ctx, t.ID, "", page)
}

// RunEvents is the audit trail of one run of a ticket the actor may see, and that ticket's id.
func (a *Application) RunEvents(ctx context.Context, actor Actor, runID string, page EventPage) (string, []StoredEvent, error) {
	ticketID, err := a.store.RunTicket(ctx, runID)
	if errors.Is(err, ErrNotFound) {
		return "", nil, httpx.NotFound("run %q not found", runID)
	}
	if err != nil {
		return "", nil, dbError(err)
	}
	if _, err := a.Ticket(ctx, actor, ticketID); err != nil {
		return "", nil, err
	}
	evs, err := a.events(ctx, ticketID, runID, page)
	return ticketID, evs, err
}

// fullTrailPage is the page size reading a whole trail goes by.
const fullTrailPage = 5000

func (a *Application) events(ctx context.Context, ticketID, runID string, page EventPage) ([]StoredEvent, error) {
	afterP, afterO := int32(-1), int64(-1)
	if page.After != "" {
		cur, err := cursor.Parse(page.After)
		if err != nil || len(cur) > 1 {
			return nil, httpx.Invalid("after is not a valid ticket cursor")
		}
		for p, o := range cur {
			afterP, afterO = p, o
		}
	}
	if !page.All {
		if page.Limit < 1 || page.Limit > 5000 {
			return nil, httpx.Invalid("limit must be between 1 and 5000")
		}
		rows, err := a.store.Events(ctx, ticketID, runID, afterP, afterO, page.Limit)
		if err != nil {
			return nil, dbError(err)
		}
		return rows, nil
	}
	// The whole trail, page by page, read before anything is answered, so a database
	// error is still an error rather than a truncated answer.
	var all []StoredEvent
	for {
		rows, err := a.store.Events(ctx, ticketID, runID, afterP, afterO, fullTrailPage)
		if err != nil {
			return nil, dbError(err)
		}
		all = append(all, rows...)
		if len(rows) < fullTrailPage {
			return all, nil
		}
		afterP, afterO = rows[len(rows)-1].Partition, rows[len(rows)-1].Offset
	}
}

// StepStats summarises the steps started in [since, until).
func (a *Application) StepStats(ctx context.Context, since, until time.Time) ([]StepStats, error) {
	if !since.Before(until) {
		return nil, httpx.Invalid("since must be before until")
	}
	stats, err := a.store.StepStats(ctx, since, until)
	if err != nil {
		return nil, dbError(err)
	}
	if stats == nil {
		stats = []StepStats{}
	}
	return stats, nil
}

// LLMStats sums the LLM calls made in [since, until) by provider and model, in all and by day.
func (a *Application) LLMStats(ctx context.Context, since, until time.Time) ([]LLMUsage, []LLMUsageDay, error) {
	if !since.Before(until) {
		return nil, nil, httpx.Invalid("since must be before until")
	}
	models, daily, err := a.store.LLMStats(ctx, since, until)
	if err != nil {
		return nil, nil, dbError(err)
	}
	if models == nil {
		models = []LLMUsage{}
	}
	if daily == nil {
		daily = []LLMUsageDay{}
	}
	return models, daily, nil
}
