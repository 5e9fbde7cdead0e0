package ports

import (
	"bufio"
	"encoding/json"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/cursor"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/services/command/app"
)

// The read routes: the projection as JSON, the audit trail as JSON pages or NDJSON, and run
// artifacts as files.

func (h *HTTP) listTickets(c *fiber.Ctx) error {
	tickets, err := h.app.Tickets(c.UserContext(), actorOf(c), c.Query("owner"), c.Query("status"), c.QueryInt("limit", 50))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"tickets": tickets})
}

func (h *HTTP) getTicket(c *fiber.Ctx) error {
	t, err := h.app.Ticket(c.UserContext(), actorOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(t)
}

func (h *HTTP) listRuns(c *fiber.Ctx) error {
	runs, err := h.app.Runs(c.UserContext(), actorOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"runs": runs})
}

// eventPage is the audit trail's query: ?after=<cursor>, ?limit= (JSON pages), or the whole
// trail as NDJSON (one envelope per line) with ?format=ndjson or Accept: application/x-ndjson.
func eventPage(c *fiber.Ctx) app.EventPage {
	ndjson := c.Query("format") == "ndjson" || strings.Contains(c.Get(fiber.HeaderAccept), "application/x-ndjson")
	return app.EventPage{After: c.Query("after"), Limit: c.QueryInt("limit", 500), All: ndjson}
}

func (h *HTTP) ticketEvents(c *fiber.Ctx) error {
	page := eventPage(c)
	ticketID := c.Params("id")
	evs, err := h.app.TicketEvents(c.UserContext(), actorOf(c), ticketID, page)
	if err != nil {
		return err
	}
	return writeEvents(c, ticketID, page, evs)
}

func (h *HTTP) runEvents(c *fiber.Ctx) error {
	page := eventPage(c)
	ticketID, evs, err := h.app.RunEvents(c.UserContext(), actorOf(c), c.Params("run_id"), page)
	if err != nil {
		return err
	}
	return writeEvents(c, ticketID, page, evs)
}

type eventItem struct {
	Cursor    string          `json:"cursor"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Event     json.RawMessage `json:"event"`
}

func writeEvents(c *fiber.Ctx, ticketID string, page app.EventPage, evs []app.StoredEvent) error {
	if page.All {
		c.Set(fiber.HeaderContentType, "application/x-ndjson")
		c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+ticketID+`-events.ndjson"`)
		c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
			for _, e := range evs {
				_, _ = w.Write(e.Envelope)
				_ = w.WriteByte('\n')
			}
			_ = w.Flush()
		})
		return nil
	}
	items := make([]eventItem, 0, len(evs))
	for _, r := range evs {
		items = append(items, eventItem{Cursor: cursor.Single(r.Partition, r.Offset).String(), Partition: r.Partition, Offset: r.Offset, Event: r.Envelope})
	}
	var next any
	if len(items) == page.Limit {
		next = items[len(items)-1].Cursor
	}
	return c.JSON(fiber.Map{"events": items, "next_cursor": next})
}

// window reads since and until (RFC 3339; default the last 24 hours).
func window(c *fiber.Ctx) (since, until time.Time, err error) {
	until = time.Now().UTC()
	since = until.Add(-24 * time.Hour)
	if v := c.Query("since"); v != "" {
		if since, err = time.Parse(time.RFC3339, v); err != nil {
			return since, until, httpx.Invalid("since must be an RFC 3339 time")
		}
	}
	if v := c.Query("until"); v != "" {
		if until, err = time.Parse(time.RFC3339, v); err != nil {
			return since, until, httpx.Invalid("until must be an RFC 3339 time")
		}
	}
	return since, until, nil
}

func (h *HTTP) llmAnalytics(c *fiber.Ctx) error {
	since, until, err := window(c)
	if err != nil {
		return err
	}
	models, daily, err := h.app.LLMStats(c.UserContext(), since, until)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"since": since, "until": until, "models": models, "daily": daily})
}

func (h *HTTP) stepAnalytics(c *fiber.Ctx) error {
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
	stats, err := h.app.StepStats(c.UserContext(), since, until)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"since": since, "until": until, "steps": stats})
}

func (h *HTTP) listArtifacts(c *fiber.Ctx) error {
	runID := c.Params("run_id")
	list, err := h.app.Artifacts(c.UserContext(), actorOf(c), runID)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"run_id": runID, "artifacts": list})
}

func (h *HTTP) getArtifact(c *fiber.Ctx) error {
	name := c.Params("name")
	content, err := h.app.ArtifactContent(c.UserContext(), actorOf(c), c.Params("run_id"), name)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "text/plain; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`"`)
	c.Set("X-Content-Type-Options", "nosniff")
	return c.Send(content)
}
