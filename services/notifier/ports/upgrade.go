package ports

import (
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/httpx"
)

const (
	localClaims  = "notifier.claims"
	localAuthErr = "notifier.auth_err"
	localSlot    = "notifier.slot"
)

// handshakeTimeout bounds the WebSocket upgrade.
const handshakeTimeout = 10 * time.Second

// precheck runs before the upgrade: what is refused here is a plain HTTP error.
func (s *Server) precheck(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return httpError(c, httpx.Errorf(fiber.StatusUpgradeRequired, "upgrade_required", "this endpoint speaks WebSocket only"))
	}
	if origin := c.Get(fiber.HeaderOrigin); origin != "" && !s.anyOrig && !s.origins[origin] {
		s.m.Rejected("origin")
		return httpError(c, httpx.Forbidden("origin %q is not allowed", origin))
	}
	ip := c.IP() // the socket peer, or the client behind a trusted proxy (httpx.WithTrustedProxies)
	if ok, _ := s.limiter.Take(ip, time.Now()); !ok {
		s.m.Rejected("rate_limited")
		c.Set(fiber.HeaderRetryAfter, "1")
		return httpError(c, httpx.Errorf(fiber.StatusTooManyRequests, "rate_limited", "too many connections from this address; retry later"))
	}
	claims, used, authErr := s.credential(c)
	user := ""
	if claims != nil {
		user = claims.Subject()
	}
	slot := s.caps.reserve(user, ip, handshakeTimeout+5*time.Second)
	if slot == nil {
		s.m.Rejected("too_many_connections")
		c.Set(fiber.HeaderRetryAfter, "5")
		return httpError(c, httpx.Errorf(fiber.StatusTooManyRequests, "too_many_connections",
			"too many open connections for this user or address; close some first"))
	}
	c.Locals(localSlot, slot)
	// Used only once the connect is otherwise accepted, so a refusal does not burn it.
	if used != nil {
		if err := s.tickets.Claim(c.UserContext(), used.ID, used.Expires); err != nil {
			claims, authErr = nil, err
		}
	}
	if claims == nil {
		c.Locals(localAuthErr, authErr)
	} else {
		c.Locals(localClaims, claims)
	}
	return c.Next()
}

// credential verifies what the connect presents. Browsers present a single-use ticket
// (POST /api/ws-tickets, returned as used, to be claimed); other clients a bearer token, in
// the Authorization header or (the brief's contract) ?access_token=.
func (s *Server) credential(c *fiber.Ctx) (claims *auth.Claims, used *auth.WSTicket, err error) {
	if ticket := c.Query("ticket"); ticket != "" {
		if used, err = s.auth.VerifyWSTicket(ticket); err != nil {
			return nil, nil, err
		}
		return used.Claims, used, nil
	}
	token := httpx.BearerToken(c)
	if token == "" {
		token = c.Query("access_token")
	}
	claims, err = s.auth.Verify(token)
	return claims, nil, err
}

// httpError renders a refusal the way every ticketflow API does, whatever error handler the
// hosting Fiber app has.
func httpError(c *fiber.Ctx, e *httpx.Error) error {
	return c.Status(e.Status).JSON(fiber.Map{"success": false, "error": e})
}
