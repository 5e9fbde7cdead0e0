package app

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/repourl"
	"github.com/ticketflow/ticketflow/libs/workflow"
)

type createTicketRequest struct {
	Title           string `json:"title"`
	Description     string `json:"description"`
	RepositoryURL   string `json:"repository_url"`
	BaseBranch      string `json:"base_branch"`
	CICommand       string `json:"ci_command"`
	SimulateFailure string `json:"simulate_failure"`
}

func (r *createTicketRequest) validate() error {
	r.Title = strings.TrimSpace(r.Title)
	if r.BaseBranch == "" {
		r.BaseBranch = "main"
	}
	switch {
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

func (s *Service) createTicket(c *fiber.Ctx) error {
	var req createTicketRequest
	if err := parseJSON(c, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	if err := s.admitRepository(c.UserContext(), req.RepositoryURL); err != nil {
		return err
	}
	ticketID := ids(c).next()
	env, err := newEvent(c, ticketID, "", &events.TicketCreatedData{
		Title: req.Title, Description: req.Description, RepositoryURL: req.RepositoryURL, BaseBranch: req.BaseBranch,
		CICommand: req.CICommand, Owner: httpx.Claims(c).Subject(), SimulateFailure: req.SimulateFailure,
	})
	if err != nil {
		return err
	}
	pos, err := s.append(c, env)
	if err != nil {
		return err
	}
	s.store.waitProjected(c.UserContext(), pos[0], s.cfg.ProjectionWait)
	t, err := s.store.ticket(c.UserContext(), ticketID)
	if err != nil {
		// Durable but not yet projected: answer from the event itself.
		t = Ticket{ID: ticketID, Title: req.Title, Description: req.Description, RepositoryURL: req.RepositoryURL,
			BaseBranch: req.BaseBranch, CICommand: req.CICommand, Owner: env.Actor, Status: string(workflow.Idle),
			CreatedAt: env.OccurredAt, UpdatedAt: env.OccurredAt}
	}
	c.Location("/api/tickets/" + ticketID)
	return c.Status(fiber.StatusCreated).JSON(t)
}

// repositoryLookupTimeout bounds the DNS lookup of a new ticket's repository host: a host that
// does not answer in time is accepted, the processor checks again before it connects.
const repositoryLookupTimeout = 2 * time.Second

// admitRepository applies the repository policy: 422 with the reason (never the addresses a
// name resolved to) when the ticket's repository may not be used.
func (s *Service) admitRepository(ctx context.Context, url string) error {
	if url == "" {
		return nil // a ticket without a repository is allowed; the real executor refuses to run it
	}
	ctx, cancel := context.WithTimeout(ctx, repositoryLookupTimeout)
	defer cancel()
	err := s.repos.Admit(ctx, url)
	var refused *repourl.Error
	if errors.As(err, &refused) {
		if refused.Detail != "" {
			s.log.Info("repository refused at ticket creation", "reason", refused.Reason, "detail", refused.Detail)
		}
		return httpx.Invalid("%v", refused)
	}
	return err
}

func (s *Service) listTickets(c *fiber.Ctx) error {
	claims := httpx.Claims(c)
	owner := claims.Subject()
	if claims.IsAdmin() {
		owner = c.Query("owner")
	}
	limit := c.QueryInt("limit", 50)
	if limit < 1 || limit > 500 {
		return httpx.Invalid("limit must be between 1 and 500")
	}
	status := c.Query("status")
	tickets, err := s.store.tickets(c.UserContext(), owner, status, limit)
	if err != nil {
		return dbError(err)
	}
	if tickets == nil {
		tickets = []Ticket{}
	}
	return c.JSON(fiber.Map{"tickets": tickets})
}

func (s *Service) getTicket(c *fiber.Ctx) error {
	t, err := s.visibleTicket(c, c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(t)
}

// visibleTicket loads a ticket the caller may see: 404 if unknown, 403 if not theirs.
func (s *Service) visibleTicket(c *fiber.Ctx, id string) (Ticket, error) {
	if id == "" || len(id) > 100 {
		return Ticket{}, httpx.Invalid("ticket id must be 1 to 100 characters")
	}
	t, err := s.store.ticket(c.UserContext(), id)
	if errors.Is(err, errNotFound) {
		return t, httpx.NotFound("ticket %q not found", id)
	}
	if err != nil {
		return t, dbError(err)
	}
	if !httpx.Claims(c).CanAccess(t.Owner) {
		return t, httpx.Forbidden("you may not access ticket %q", id)
	}
	return t, nil
}
