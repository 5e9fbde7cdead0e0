package adapters

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Artifacts writes run artifacts (table run_artifacts): the real executor's full CI output.
type Artifacts struct{ db *pgxpool.Pool }

// NewArtifacts stores artifacts in db.
func NewArtifacts(db *pgxpool.Pool) *Artifacts { return &Artifacts{db: db} }

// Put writes or rewrites (a retried step) one artifact.
func (s *Artifacts) Put(ctx context.Context, runID, ticketID, name string, content []byte, lines int64) error {
	_, err := s.db.Exec(ctx, `INSERT INTO run_artifacts (run_id, ticket_id, name, content, size_bytes, lines)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (run_id, name) DO UPDATE SET ticket_id = EXCLUDED.ticket_id, content = EXCLUDED.content,
			size_bytes = EXCLUDED.size_bytes, lines = EXCLUDED.lines, created_at = now()`,
		runID, ticketID, name, content, int64(len(content)), lines)
	return err
}
