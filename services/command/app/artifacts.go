package app

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/ticketflow/ticketflow/libs/httpx"
)

// Run artifacts (table run_artifacts, written by the processor): today the full output of
// each CI execution, ci-<iteration>.log, whose lines past the output cap are not events. Only
// the ticket's owner and admins see them; anyone else gets 404, as for a run that does not
// exist, so artifact names do not reveal other tenants' runs.

// Artifact is one run artifact as listed.
type Artifact struct {
	Name      string    `json:"name"`
	SizeBytes int64     `json:"size_bytes"`
	Lines     int64     `json:"lines"`
	CreatedAt time.Time `json:"created_at"`
}

var (
	artifactRunID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,100}$`)
	artifactName  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)
)

func (s *Service) listArtifacts(c *fiber.Ctx) error {
	runID, err := s.visibleRun(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	var list []Artifact
	err = s.store.with(ctx, func(q querier) error {
		rows, err := q.Query(ctx, `SELECT name, size_bytes, lines, created_at FROM run_artifacts
			WHERE run_id = $1 ORDER BY created_at, name`, runID)
		if err != nil {
			return err
		}
		list, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Artifact, error) {
			var a Artifact
			err := r.Scan(&a.Name, &a.SizeBytes, &a.Lines, &a.CreatedAt)
			return a, err
		})
		return err
	})
	if err != nil {
		return dbError(err)
	}
	if list == nil {
		list = []Artifact{}
	}
	return c.JSON(fiber.Map{"run_id": runID, "artifacts": list})
}

func (s *Service) getArtifact(c *fiber.Ctx) error {
	runID, err := s.visibleRun(c)
	if err != nil {
		return err
	}
	name := c.Params("name")
	if !artifactName.MatchString(name) {
		return httpx.NotFound("artifact %q not found", name)
	}
	var content []byte
	ctx := c.UserContext()
	err = s.store.with(ctx, func(q querier) error {
		return q.QueryRow(ctx, `SELECT content FROM run_artifacts WHERE run_id = $1 AND name = $2`, runID, name).Scan(&content)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return httpx.NotFound("artifact %q not found", name)
	}
	if err != nil {
		return dbError(err)
	}
	c.Set(fiber.HeaderContentType, "text/plain; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`"`)
	c.Set("X-Content-Type-Options", "nosniff")
	return c.Send(content)
}

// visibleRun returns the run id of the request when the caller may see the run: its ticket
// is theirs, or they are an admin. A run the projector has not recorded yet is found through
// its artifacts' ticket.
func (s *Service) visibleRun(c *fiber.Ctx) (string, error) {
	runID := c.Params("run_id")
	if !artifactRunID.MatchString(runID) {
		return "", httpx.NotFound("run %q not found", runID)
	}
	ctx := c.UserContext()
	ticketID, err := s.store.runTicket(ctx, runID)
	if errors.Is(err, errNotFound) {
		ticketID, err = s.artifactTicket(ctx, runID)
	}
	if errors.Is(err, errNotFound) {
		return "", httpx.NotFound("run %q not found", runID)
	}
	if err != nil {
		return "", dbError(err)
	}
	t, err := s.store.ticket(ctx, ticketID)
	if errors.Is(err, errNotFound) || (err == nil && !httpx.Claims(c).CanAccess(t.Owner)) {
		return "", httpx.NotFound("run %q not found", runID)
	}
	if err != nil {
		return "", dbError(err)
	}
	return runID, nil
}

func (s *Service) artifactTicket(ctx context.Context, runID string) (string, error) {
	var ticketID string
	err := s.store.with(ctx, func(q querier) error {
		return q.QueryRow(ctx, `SELECT ticket_id FROM run_artifacts WHERE run_id = $1 LIMIT 1`, runID).Scan(&ticketID)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return "", errNotFound
	}
	return ticketID, err
}
