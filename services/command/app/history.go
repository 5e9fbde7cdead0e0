package app

import (
	"bufio"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/cursor"
	"github.com/ticketflow/ticketflow/libs/httpx"
)

func (s *Service) listRuns(c *fiber.Ctx) error {
	t, err := s.visibleTicket(c, c.Params("id"))
	if err != nil {
		return err
	}
	runs, err := s.store.runs(c.UserContext(), t.ID)
	if err != nil {
		return dbError(err)
	}
	if runs == nil {
		runs = []Run{}
	}
	return c.JSON(fiber.Map{"runs": runs})
}

func (s *Service) ticketEvents(c *fiber.Ctx) error {
	t, err := s.visibleTicket(c, c.Params("id"))
	if err != nil {
		return err
	}
	return s.writeEvents(c, t.ID, "")
}

func (s *Service) runEvents(c *fiber.Ctx) error {
	runID := c.Params("run_id")
	ticketID, err := s.store.runTicket(c.UserContext(), runID)
	if errors.Is(err, errNotFound) {
		return httpx.NotFound("run %q not found", runID)
	}
	if err != nil {
		return dbError(err)
	}
	if _, err := s.visibleTicket(c, ticketID); err != nil {
		return err
	}
	return s.writeEvents(c, ticketID, runID)
}

type eventItem struct {
	Cursor    string          `json:"cursor"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Event     json.RawMessage `json:"event"`
}

// writeEvents serves the audit trail: a page of events after ?after=<cursor>, as JSON, or the
// whole trail as NDJSON (one envelope per line) with ?format=ndjson or Accept: application/x-ndjson.
func (s *Service) writeEvents(c *fiber.Ctx, ticketID, runID string) error {
	afterP, afterO := int32(-1), int64(-1)
	if raw := c.Query("after"); raw != "" {
		cur, err := cursor.Parse(raw)
		if err != nil || len(cur) > 1 {
			return httpx.Invalid("after is not a valid ticket cursor")
		}
		for p, o := range cur {
			afterP, afterO = p, o
		}
	}
	ndjson := c.Query("format") == "ndjson" || strings.Contains(c.Get(fiber.HeaderAccept), "application/x-ndjson")
	if ndjson {
		return s.streamNDJSON(c, ticketID, runID, afterP, afterO)
	}
	limit := c.QueryInt("limit", 500)
	if limit < 1 || limit > 5000 {
		return httpx.Invalid("limit must be between 1 and 5000")
	}
	rows, err := s.store.events(c.UserContext(), ticketID, runID, afterP, afterO, limit)
	if err != nil {
		return dbError(err)
	}
	items := make([]eventItem, 0, len(rows))
	for _, r := range rows {
		items = append(items, eventItem{Cursor: cursor.Single(r.Partition, r.Offset).String(), Partition: r.Partition, Offset: r.Offset, Event: r.Envelope})
	}
	var next any
	if len(items) == limit {
		next = items[len(items)-1].Cursor
	}
	return c.JSON(fiber.Map{"events": items, "next_cursor": next})
}

func (s *Service) streamNDJSON(c *fiber.Ctx, ticketID, runID string, afterP int32, afterO int64) error {
	// Read the whole trail page by page before streaming, so a database error is still an
	// HTTP error rather than a truncated body.
	var all []StoredEvent
	for {
		rows, err := s.store.events(c.UserContext(), ticketID, runID, afterP, afterO, 5000)
		if err != nil {
			return dbError(err)
		}
		all = append(all, rows...)
		if len(rows) < 5000 {
			break
		}
		afterP, afterO = rows[len(rows)-1].Partition, rows[len(rows)-1].Offset
	}
	c.Set(fiber.HeaderContentType, "application/x-ndjson")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+ticketID+`-events.ndjson"`)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		for _, e := range all {
			_, _ = w.Write(e.Envelope)
			_ = w.WriteByte('\n')
		}
		_ = w.Flush()
	})
	return nil
}

func (s *Service) stepAnalytics(c *fiber.Ctx) error {
	until := time.Now().UTC()
	since := until.Add(-24 * time.Hour)
	var err error
	if v := c.Query("since"); v != "" {
		if since, err = time.Parse(time.RFC3339, v); err != nil {
			return httpx.Invalid("since must be an RFC 3339 time")
		}
	}
	if v := c.Query("until"); v != "" {
		if until, err = time.Parse(time.RFC3339, v); err != nil {
			return httpx.Invalid("until must be an RFC 3339 time")
		}
	}
	if !since.Before(until) {
		return httpx.Invalid("since must be before until")
	}
	stats, err := s.store.stepStats(c.UserContext(), since, until)
	if err != nil {
		return dbError(err)
	}
	if stats == nil {
		stats = []StepStats{}
	}
	return c.JSON(fiber.Map{"since": since, "until": until, "steps": stats})
}
