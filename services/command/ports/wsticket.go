package ports

import (
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/httpx"
)

type wsTicketReply struct {
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expires_in"`
}

// wsTicket answers POST /api/ws-tickets: a short-lived single-use ticket a browser puts in
// the WebSocket URL (?ticket=) instead of its bearer token, which it cannot send as a header
// on a WebSocket. The socket it opens closes when the bearer token expires.
func (h *HTTP) wsTicket(c *fiber.Ctx) error {
	ticket, ttl, err := h.verifier.IssueWSTicket(httpx.Claims(c), h.cfg.WSTicketTTL)
	if err != nil {
		return httpx.Errorf(fiber.StatusUnauthorized, "unauthenticated", "cannot issue a WebSocket ticket: %v", err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(wsTicketReply{Ticket: ticket, ExpiresIn: int(ttl / time.Second)})
}
