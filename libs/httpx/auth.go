package httpx

import (
	"errors"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/auth"
)

const claimsKey = "ticketflow.claims"

// RequireAuth verifies the bearer token from the Authorization header, and only from there:
// a token in a URL ends up in proxy logs and browser history. (WebSockets, which browsers
// cannot give headers, use a short-lived single-use ticket instead: POST /api/ws-tickets.)
func RequireAuth(v *auth.Verifier) fiber.Handler {
	return func(c *fiber.Ctx) error {
		claims, err := v.Verify(BearerToken(c))
		if err != nil {
			msg := "a valid bearer token is required"
			switch {
			case errors.Is(err, auth.ErrExpiredToken):
				msg = "the token has expired"
			case errors.Is(err, auth.ErrMissingToken):
				msg = "missing bearer token (Authorization: Bearer header)"
			}
			return Errorf(fiber.StatusUnauthorized, "unauthenticated", "%s", msg)
		}
		c.Locals(claimsKey, claims)
		return c.Next()
	}
}

// BearerToken is the token of the request's "Authorization: Bearer" header ("" without one).
func BearerToken(c *fiber.Ctx) string {
	return auth.BearerToken(c.Get(fiber.HeaderAuthorization))
}

// Claims returns the verified claims RequireAuth stored on the request.
func Claims(c *fiber.Ctx) *auth.Claims {
	claims, _ := c.Locals(claimsKey).(*auth.Claims)
	return claims
}

// Forbidden is the error for a bearer who may not see a resource.
func Forbidden(format string, args ...any) *Error {
	return Errorf(fiber.StatusForbidden, "forbidden", format, args...)
}
