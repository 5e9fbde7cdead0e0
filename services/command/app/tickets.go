package app

import (
	"context"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/repourl"
)

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
			s.logger.Info("repository refused at ticket creation", "reason", refused.Reason, "detail", refused.Detail)
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
	var t Ticket
	err := s.store.with(c.UserContext(), func(q querier) (err error) {
		t, err = visibleOn(c.UserContext(), q, actorOf(c), id)
		return err
	})
	if err != nil {
		return t, dbError(err)
	}
	return t, nil
}
