package httpx

import "github.com/gofiber/fiber/v2"

// WebAppCSP is the Content-Security-Policy of the web app: its own scripts, styles and
// images only (React sets element styles through the CSSOM, which style-src does not
// restrict, so no 'unsafe-inline'), API calls and WebSockets to its own origin (ws:/wss:
// because 'self' does not match WebSocket schemes in every browser), never framed.
const WebAppCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' ws: wss:; font-src 'self'; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

// webAppHeaders are set on every response of the web app (files and the index fallback).
func webAppHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentSecurityPolicy, WebAppCSP)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	return c.Next()
}
