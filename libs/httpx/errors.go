// Package httpx holds what every ticketflow HTTP surface shares: JSON errors with stable
// codes, the Fiber error handler that renders them, and bearer-token authentication.
package httpx

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/gofiber/fiber/v2"
)

// Error is an API error: a stable machine code, a human message and an HTTP status.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Errorf builds an API error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Common errors.
func BadRequest(format string, args ...any) *Error {
	return Errorf(fiber.StatusBadRequest, "bad_request", format, args...)
}
func Invalid(format string, args ...any) *Error {
	return Errorf(fiber.StatusUnprocessableEntity, "invalid_field", format, args...)
}
func NotFound(format string, args ...any) *Error {
	return Errorf(fiber.StatusNotFound, "not_found", format, args...)
}
func Conflict(code, format string, args ...any) *Error {
	return Errorf(fiber.StatusConflict, code, format, args...)
}
func Unavailable(format string, args ...any) *Error {
	return Errorf(fiber.StatusServiceUnavailable, "unavailable", format, args...)
}

// ErrorHandler renders every error as {"error": {"code", "message"}} with the right status.
// Unknown errors become 500 with a generic message; their detail goes to the log only.
func ErrorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		var apiErr *Error
		var fiberErr *fiber.Error
		switch {
		case errors.As(err, &apiErr):
		case errors.As(err, &fiberErr):
			apiErr = &Error{Status: fiberErr.Code, Code: codeForStatus(fiberErr.Code), Message: fiberErr.Message}
		default:
			log.Error("request failed", "method", c.Method(), "path", c.Path(), "err", err)
			apiErr = &Error{Status: fiber.StatusInternalServerError, Code: "internal", Message: "internal error"}
		}
		return c.Status(apiErr.Status).JSON(fiber.Map{"success": false, "error": apiErr})
	}
}

func codeForStatus(status int) string {
	switch status {
	case fiber.StatusBadRequest:
		return "bad_request"
	case fiber.StatusUnauthorized:
		return "unauthenticated"
	case fiber.StatusForbidden:
		return "forbidden"
	case fiber.StatusNotFound:
		return "not_found"
	case fiber.StatusMethodNotAllowed:
		return "method_not_allowed"
	case fiber.StatusRequestEntityTooLarge:
		return "too_large"
	case fiber.StatusUnprocessableEntity:
		return "invalid_field"
	case fiber.StatusTooManyRequests:
		return "rate_limited"
	case fiber.StatusServiceUnavailable:
		return "unavailable"
	}
	return "error"
}
