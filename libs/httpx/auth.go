package httpx

import (
	"errors"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/auth"
)

const claimsKey = "ticketflow.claims"

// RequireAuth verifies the bearer token from the Authorization header or, for browsers that
// cannot set headers on a WebSocket, the access_token query parameter.
func RequireAuth(v *auth.Verifier) fiber.Handler {
	return func(c *fiber.Ctx) error {
		token := auth.BearerToken(c.Get(fiber.HeaderAuthorization))
		if token == "" {
			token = c.Query("access_token")
		}
		claims, err := v.Verify(token)
		if err != nil {
			msg := "a valid bearer token is required"
			switch {
			case errors.Is(err, auth.ErrExpiredToken):
				msg = "the token has expired"
			case errors.Is(err, auth.ErrMissingToken):
				msg = "missing bearer token (Authorization header or access_token parameter)"
			}
			return Errorf(fiber.StatusUnauthorized, "unauthenticated", "%s", msg)
		}
		c.Locals(claimsKey, claims)
		return c.Next()
	}
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
