package app

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/workflow"
)

// The write use cases. Each one only decides — from the ticket as the projection shows it
// under the ticket's lock — which events to append and what to answer (a plan); execute
// (execute.go) holds the locks, the idempotency key and the append.

// plan is what a write will do once its checks passed: append events (ids already fixed)
// and then answer status/body.
type plan struct {
	ticketID string
	events   []events.Envelope
	status   int
	body     any
	location string
}

// write is one use case handed to execute.
type write struct {
	op   string
	args any // with op, what identifies the request for its Idempotency-Key
	// ticketID is the existing ticket the write locks and loads; "" when it creates one.
	ticketID string
	decide   func(t Ticket, ids *idSource) (plan, error)
}

// TicketInput is a new ticket's fields.
type TicketInput struct {
	// ID fixes the new ticket's id (dev's demo ticket); "" means a generated one. It is not
	// part of the HTTP body (an "id" field there is refused as unknown).
	ID              string `json:"-"`
	Title           string `json:"title"`
	Description     string `json:"description"`
	RepositoryURL   string `json:"repository_url"`
	BaseBranch      string `json:"base_branch"`
	CICommand       string `json:"ci_command"`
	SimulateFailure string `json:"simulate_failure"`
}

func (r *TicketInput) validate() error {
	r.Title = strings.TrimSpace(r.Title)
	if r.BaseBranch == "" {
		r.BaseBranch = "main"
	}
	switch {
	case len(r.ID) > 100:
		return httpx.Invalid("ticket id must be 1 to 100 characters")
	case r.Title == "":
		return httpx.Invalid("title is required")
	case utf8.RuneCountInString(r.Title) > 200:
		return httpx.Invalid("title is longer than 200 characters")
	case len(r.Description) > 20000:
		return httpx.Invalid("description is longer than 20000 bytes")
	case len(r.CICommand) > 2000:
		return httpx.Invalid("ci_command is longer than 2000 bytes")
	case r.SimulateFailure != "" && r.SimulateFailure != "once" && r.SimulateFailure != "always":
		return httpx.Invalid(`simulate_failure must be "", "once" or "always"`)
	}
	if err := workflow.ValidateBranch(r.BaseBranch); err != nil {
		return httpx.Invalid("%v", err)
	}
	return nil
}

// CreateTicket appends TicketCreated and answers 201 with the ticket.
func (a *Application) CreateTicket(ctx context.Context, actor Actor, in TicketInput, key string) (Result, error) {
	if err := in.validate(); err != nil {
		return Result{}, err
	}
	if err := a.admitRepository(ctx, in.RepositoryURL); err != nil {
		return Result{}, err
	}
	return a.execute(ctx, actor, key, write{op: "create_ticket", args: in, decide: func(_ Ticket, ids *idSource) (plan, error) {
		ticketID := in.ID
		if ticketID == "" {
			ticketID = ids.next()
		}
		env, err := newEvent(ids, ticketID, "", actor.Subject, &events.TicketCreatedData{
			Title: in.Title, Description: in.Description, RepositoryURL: in.RepositoryURL, BaseBranch: in.BaseBranch,
			CICommand: in.CICommand, Owner: actor.Subject, SimulateFailure: in.SimulateFailure,
		})
		if err != nil {
			return plan{}, err
		}
		t := Ticket{ID: ticketID, Title: in.Title, Description: in.Description, RepositoryURL: in.RepositoryURL,
			BaseBranch: in.BaseBranch, CICommand: in.CICommand, Owner: actor.Subject, Status: string(workflow.Idle),
			CreatedAt: env.OccurredAt, UpdatedAt: env.OccurredAt}
		return plan{ticketID: ticketID, events: []events.Envelope{env}, status: http.StatusCreated, body: t,
			location: "/api/tickets/" + ticketID}, nil
	}})
}

// StartProcessing is the brief's start: TicketProcessingRequested for a new run, 202 PENDING.
func (a *Application) StartProcessing(ctx context.Context, actor Actor, ticketID, key string) (Result, error) {
	if ticketID == "" {
		return Result{}, httpx.Invalid("ticket_id is required")
	}
	return a.execute(ctx, actor, key, write{op: "start", args: ticketID, ticketID: ticketID, decide: func(t Ticket, ids *idSource) (plan, error) {
		if workflow.Status(t.Status).Active() {
			return plan{}, httpx.Conflict("run_active", "ticket %q already has an active run (%s)", t.ID, t.CurrentRunID)
		}
		runID := ids.next()
		return accepted(ids, t, actor, map[string]any{
			"success": true, "status": workflow.Pending, "message": workflow.MessagePending,
			"ticket_id": t.ID, "run_id": runID, "websocket_url": "/ws/tickets/" + t.ID,
		}, event{runID, &events.ProcessingRequestedData{RequestedBy: actor.Subject, Reason: "start"}})
	}})
}

// CancelRun asks the processor to cancel the ticket's active run.
func (a *Application) CancelRun(ctx context.Context, actor Actor, ticketID, key string) (Result, error) {
	return a.execute(ctx, actor, key, write{op: "cancel", args: ticketID, ticketID: ticketID, decide: func(t Ticket, ids *idSource) (plan, error) {
		if !workflow.Status(t.Status).Active() {
			return plan{}, httpx.Conflict("no_active_run", "ticket %q has no active run to cancel (status %s)", t.ID, t.Status)
		}
		return accepted(ids, t, actor, map[string]any{"success": true, "ticket_id": t.ID, "run_id": t.CurrentRunID},
			event{t.CurrentRunID, &events.CancelRequestedData{RequestedBy: actor.Subject}})
	}})
}

// Validation is a human's decision on a completed run.
type Validation struct {
	Decision string `json:"decision"` // "approve" or "request_changes"
	Comment  string `json:"comment"`
}

// ValidateRun approves the completed run, or requests changes: ChangesRequested on it and
// TicketProcessingRequested for the next run, appended together.
func (a *Application) ValidateRun(ctx context.Context, actor Actor, ticketID string, v Validation, key string) (Result, error) {
	v.Comment = strings.TrimSpace(v.Comment)
	switch {
	case v.Decision != "approve" && v.Decision != "request_changes":
		return Result{}, httpx.Invalid(`decision must be "approve" or "request_changes"`)
	case v.Decision == "request_changes" && v.Comment == "":
		return Result{}, httpx.Invalid("a comment is required to request changes")
	case len(v.Comment) > 10000:
		return Result{}, httpx.Invalid("comment is longer than 10000 bytes")
	}
	args := struct {
		TicketID string
		Validation
	}{ticketID, v}
	return a.execute(ctx, actor, key, write{op: "validate", args: args, ticketID: ticketID, decide: func(t Ticket, ids *idSource) (plan, error) {
		if workflow.Status(t.Status) != workflow.Completed {
			return plan{}, httpx.Conflict("not_awaiting_validation", "ticket %q is %s, not COMPLETED awaiting validation", t.ID, t.Status)
		}
		if v.Decision == "approve" {
			return accepted(ids, t, actor, map[string]any{"success": true, "ticket_id": t.ID, "status": workflow.Validated},
				event{t.CurrentRunID, &events.ValidationApprovedData{ApprovedBy: actor.Subject, Comment: v.Comment}})
		}
		next := ids.next()
		return accepted(ids, t, actor, map[string]any{"success": true, "ticket_id": t.ID, "status": workflow.Pending,
			"run_id": next, "websocket_url": "/ws/tickets/" + t.ID},
			event{t.CurrentRunID, &events.ChangesRequestedData{RequestedBy: actor.Subject, Comment: v.Comment, NextRunID: next}},
			event{next, &events.ProcessingRequestedData{RequestedBy: actor.Subject, Reason: "changes_requested"}})
	}})
}

// event is one event a write plans: its payload, on a run of the ticket ("" for none).
type event struct {
	runID   string
	payload events.Payload
}

// accepted plans evs on ticket t by actor, answered 202 with body: the tail of every write
// to an existing ticket (execute then appends them, waits for the projection and answers).
func accepted(ids *idSource, t Ticket, actor Actor, body map[string]any, evs ...event) (plan, error) {
	p := plan{ticketID: t.ID, status: http.StatusAccepted, body: body}
	for _, e := range evs {
		env, err := newEvent(ids, t.ID, e.runID, actor.Subject, e.payload)
		if err != nil {
			return plan{}, err
		}
		p.events = append(p.events, env)
	}
	return p, nil
}

// idSource hands out the ids a request's events and entities get: random UUIDv7 normally,
// name-based UUIDs derived from the Idempotency-Key when there is one, so every attempt of
// one keyed request plans the very same ids.
type idSource struct {
	seed uuid.UUID
	n    int
}

func keyIDs(subject, key string) *idSource {
	return &idSource{seed: uuid.NewSHA1(uuid.NameSpaceURL, []byte("ticketflow:"+subject+":"+key))}
}

func (g *idSource) next() string {
	g.n++
	if g.seed == uuid.Nil {
		return uuid.Must(uuid.NewV7()).String()
	}
	return uuid.NewSHA1(g.seed, fmt.Appendf(nil, "%d", g.n)).String()
}

// newEvent builds an envelope whose id comes from the request's id source.
func newEvent(ids *idSource, ticketID, runID, actor string, payload events.Payload) (events.Envelope, error) {
	env, err := events.New(ticketID, runID, actor, payload)
	if err != nil {
		return env, err
	}
	env.ID = ids.next()
	return env, nil
}
