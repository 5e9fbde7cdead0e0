package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/workflow"
)

type startRequest struct {
	TicketID string `json:"ticket_id"`
}

// startProcessing is the brief's POST /api/tickets/processing/start. It answers once the
// TicketProcessingRequested event is durably in Kafka.
func (s *Service) startProcessing(c *fiber.Ctx) error {
	var req startRequest
	if err := parseJSON(c, &req); err != nil {
		return err
	}
	if req.TicketID == "" {
		return httpx.Invalid("ticket_id is required")
	}
	return s.withTicketLock(c, req.TicketID, func(t Ticket) error {
		if workflow.Status(t.Status).Active() {
			return httpx.Conflict("run_active", "ticket %q already has an active run (%s)", t.ID, t.CurrentRunID)
		}
		runID := ids(c).next()
		env, err := newEvent(c, t.ID, runID, &events.ProcessingRequestedData{RequestedBy: httpx.Claims(c).Subject(), Reason: "start"})
		if err != nil {
			return err
		}
		pos, err := s.append(c, env)
		if err != nil {
			return err
		}
		s.store.waitProjected(c.UserContext(), pos[0], s.cfg.ProjectionWait)
		return c.Status(fiber.StatusAccepted).JSON(fiber.Map{
			"success": true, "status": workflow.Pending, "message": workflow.MessagePending,
			"ticket_id": t.ID, "run_id": runID, "websocket_url": "/ws/tickets/" + t.ID,
		})
	})
}

func (s *Service) cancelRun(c *fiber.Ctx) error {
	return s.withTicketLock(c, c.Params("id"), func(t Ticket) error {
		if !workflow.Status(t.Status).Active() {
			return httpx.Conflict("no_active_run", "ticket %q has no active run to cancel (status %s)", t.ID, t.Status)
		}
		env, err := newEvent(c, t.ID, t.CurrentRunID, &events.CancelRequestedData{RequestedBy: httpx.Claims(c).Subject()})
		if err != nil {
			return err
		}
		pos, err := s.append(c, env)
		if err != nil {
			return err
		}
		s.store.waitProjected(c.UserContext(), pos[0], s.cfg.ProjectionWait)
		return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"success": true, "ticket_id": t.ID, "run_id": t.CurrentRunID})
	})
}

type validationRequest struct {
	Decision string `json:"decision"`
	Comment  string `json:"comment"`
}

func (s *Service) validateRun(c *fiber.Ctx) error {
	var req validationRequest
	if err := parseJSON(c, &req); err != nil {
		return err
	}
	req.Comment = strings.TrimSpace(req.Comment)
	switch {
	case req.Decision != "approve" && req.Decision != "request_changes":
		return httpx.Invalid(`decision must be "approve" or "request_changes"`)
	case req.Decision == "request_changes" && req.Comment == "":
		return httpx.Invalid("a comment is required to request changes")
	case len(req.Comment) > 10000:
		return httpx.Invalid("comment is longer than 10000 bytes")
	}
	return s.withTicketLock(c, c.Params("id"), func(t Ticket) error {
		if workflow.Status(t.Status) != workflow.Completed {
			return httpx.Conflict("not_awaiting_validation", "ticket %q is %s, not COMPLETED awaiting validation", t.ID, t.Status)
		}
		who := httpx.Claims(c).Subject()
		var envs []events.Envelope
		resp := fiber.Map{"success": true, "ticket_id": t.ID}
		if req.Decision == "approve" {
			env, err := newEvent(c, t.ID, t.CurrentRunID, &events.ValidationApprovedData{ApprovedBy: who, Comment: req.Comment})
			if err != nil {
				return err
			}
			envs = append(envs, env)
			resp["status"] = workflow.Validated
		} else {
			next := ids(c).next()
			changes, err := newEvent(c, t.ID, t.CurrentRunID, &events.ChangesRequestedData{RequestedBy: who, Comment: req.Comment, NextRunID: next})
			if err != nil {
				return err
			}
			request, err := newEvent(c, t.ID, next, &events.ProcessingRequestedData{RequestedBy: who, Reason: "changes_requested"})
			if err != nil {
				return err
			}
			envs = append(envs, changes, request)
			resp["status"], resp["run_id"], resp["websocket_url"] = workflow.Pending, next, "/ws/tickets/"+t.ID
		}
		pos, err := s.append(c, envs...)
		if err != nil {
			return err
		}
		s.store.waitProjected(c.UserContext(), pos[len(pos)-1], s.cfg.ProjectionWait)
		return c.Status(fiber.StatusAccepted).JSON(resp)
	})
}

// withTicketLock loads a visible ticket under its advisory lock and runs fn.
func (s *Service) withTicketLock(c *fiber.Ctx, ticketID string, fn func(Ticket) error) error {
	if _, err := s.visibleTicket(c, ticketID); err != nil {
		return err
	}
	unlock, err := s.store.lockTicket(c.UserContext(), ticketID)
	if err != nil {
		return dbError(err)
	}
	defer unlock()
	t, err := s.visibleTicket(c, ticketID) // re-read under the lock
	if err != nil {
		return err
	}
	return fn(t)
}

// append writes events durably or fails with 503 (and then nothing was appended).
func (s *Service) append(c *fiber.Ctx, envs ...events.Envelope) ([]events.Position, error) {
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.AppendTimeout)
	defer cancel()
	if tp := c.Get("traceparent"); tp != "" && len(tp) <= 64 {
		ctx = kafka.WithTraceparent(ctx, tp)
	}
	pos, err := s.producer.Append(ctx, envs...)
	switch {
	case errors.Is(err, kafka.ErrUnconfirmed):
		s.log.Error("append unconfirmed", "err", err)
		return nil, httpx.Errorf(fiber.StatusServiceUnavailable, "append_unconfirmed",
			"the event log did not confirm the write in time; it may still be applied once — retry with the same Idempotency-Key, which makes the retry safe")
	case err != nil:
		s.log.Error("append failed", "err", err)
		return nil, httpx.Unavailable("the event log is unavailable; nothing was written, retry later")
	}
	return pos, nil
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

func dbError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return httpx.Unavailable("request timed out")
	}
	return httpx.Unavailable("database unavailable: %v", err)
}
