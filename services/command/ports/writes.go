package ports

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/services/command/app"
)

// The write routes: parse the request, call the use case, render its Result.

const idempotencyHeader = "Idempotency-Key"

// requestContext is the request's context (with its deadline). It carries the request's
// server span (httpx.WithObservability, continuing the caller's traceparent), which the
// Kafka client's hook propagates into the appended records' headers.
func requestContext(c *fiber.Ctx) context.Context { return c.UserContext() }

func render(c *fiber.Ctx, res app.Result, err error) error {
	if err != nil {
		return err
	}
	if res.Replayed {
		c.Set("Idempotent-Replayed", "true")
	}
	if res.Location != "" {
		c.Location(res.Location)
	}
	c.Status(res.Status).Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(res.Body)
}

func (h *HTTP) createTicket(c *fiber.Ctx) error {
	var in app.TicketInput
	if err := parseJSON(c, &in); err != nil {
		return err
	}
	res, err := h.app.CreateTicket(requestContext(c), actorOf(c), in, c.Get(idempotencyHeader))
	return render(c, res, err)
}

type startRequest struct {
	TicketID string `json:"ticket_id"`
}

// startProcessing is the brief's POST /api/tickets/processing/start. It answers once the
// TicketProcessingRequested event is durably in Kafka.
func (h *HTTP) startProcessing(c *fiber.Ctx) error {
	var req startRequest
	if err := parseJSON(c, &req); err != nil {
		return err
	}
	res, err := h.app.StartProcessing(requestContext(c), actorOf(c), req.TicketID, c.Get(idempotencyHeader))
	return render(c, res, err)
}

func (h *HTTP) cancelRun(c *fiber.Ctx) error {
	res, err := h.app.CancelRun(requestContext(c), actorOf(c), c.Params("id"), c.Get(idempotencyHeader))
	return render(c, res, err)
}

func (h *HTTP) validateRun(c *fiber.Ctx) error {
	var v app.Validation
	if err := parseJSON(c, &v); err != nil {
		return err
	}
	res, err := h.app.ValidateRun(requestContext(c), actorOf(c), c.Params("id"), v, c.Get(idempotencyHeader))
	return render(c, res, err)
}

// parseJSON decodes a JSON object body strictly: unknown fields and trailing data are 400s.
func parseJSON(c *fiber.Ctx, into any) error {
	if !strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderContentType)), fiber.MIMEApplicationJSON) {
		return httpx.Errorf(fiber.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
	}
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return httpx.BadRequest("malformed JSON body: %v", err)
	}
	if dec.More() {
		return httpx.BadRequest("malformed JSON body: trailing data")
	}
	return nil
}
