package app

import (
	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/httpx"
)

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
