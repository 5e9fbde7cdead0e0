package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/httpx"
)

const (
	idempotencyHeader = "Idempotency-Key"
	// staleAfter is how long an unfinished request holds its key; after it (the process died
	// mid-request) a retry may take over. Event ids derived from the key keep that retry from
	// creating different events.
	staleAfter = 30 * time.Second
	idsKey     = "ticketflow.ids"
)

// idempotent wraps a POST handler: a retried request with the same Idempotency-Key and the
// same body gets the first answer and appends nothing; the same key with a different body is
// refused. Ids of events the request creates are derived from the key, so even a retry after
// a crash between append and answer writes events with the same ids (consumers dedupe on them).
func (s *Service) idempotent(h fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		key := c.Get(idempotencyHeader)
		if key == "" {
			c.Locals(idsKey, &idSource{})
			return h(c)
		}
		if len(key) > 200 {
			return httpx.BadRequest("Idempotency-Key is longer than 200 characters")
		}
		subject := httpx.Claims(c).Subject()
		sum := sha256.Sum256(append([]byte(c.Method()+" "+c.Path()+"\n"), c.Body()...))
		hash := hex.EncodeToString(sum[:])
		ctx := c.UserContext()

		replay, err := s.claimKey(ctx, subject, key, hash)
		if err != nil {
			return err
		}
		if replay != nil {
			c.Set("Idempotent-Replayed", "true")
			c.Status(replay.status).Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
			return c.Send(replay.body)
		}
		c.Locals(idsKey, &idSource{seed: uuid.NewSHA1(uuid.NameSpaceURL, []byte("ticketflow:"+subject+":"+key))})
		herr := h(c)
		if herr != nil {
			if cerr := c.App().ErrorHandler(c, herr); cerr != nil {
				return cerr
			}
		}
		status := c.Response().StatusCode()
		bg, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if status >= 500 {
			// Nothing was appended (or the append is unknown): free the key for a retry.
			_, _ = s.store.db.Exec(bg, `DELETE FROM idempotency_keys WHERE subject = $1 AND key = $2`, subject, key)
			return nil
		}
		if _, err := s.store.db.Exec(bg, `UPDATE idempotency_keys SET status = $3, response = $4
			WHERE subject = $1 AND key = $2`, subject, key, status, json.RawMessage(c.Response().Body())); err != nil {
			s.log.Error("store idempotent response", "err", err)
		}
		return nil
	}
}

type storedResponse struct {
	status int
	body   []byte
}

func (s *Service) claimKey(ctx context.Context, subject, key, hash string) (*storedResponse, error) {
	tag, err := s.store.db.Exec(ctx, `INSERT INTO idempotency_keys (subject, key, request_hash) VALUES ($1, $2, $3)
		ON CONFLICT (subject, key) DO UPDATE SET created_at = now()
		WHERE idempotency_keys.status IS NULL AND idempotency_keys.request_hash = $3
		  AND idempotency_keys.created_at < now() - $4::interval`, subject, key, hash, fmt.Sprintf("%d seconds", int(staleAfter.Seconds())))
	if err != nil {
		return nil, httpx.Unavailable("database unavailable: %v", err)
	}
	if tag.RowsAffected() == 1 {
		return nil, nil
	}
	var storedHash string
	var status *int
	var body []byte
	err = s.store.db.QueryRow(ctx, `SELECT request_hash, status, response::text FROM idempotency_keys WHERE subject = $1 AND key = $2`,
		subject, key).Scan(&storedHash, &status, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		return s.claimKey(ctx, subject, key, hash) // deleted after a 5xx in between: claim again
	}
	if err != nil {
		return nil, httpx.Unavailable("database unavailable: %v", err)
	}
	switch {
	case storedHash != hash:
		return nil, httpx.Errorf(fiber.StatusUnprocessableEntity, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
	case status == nil:
		return nil, httpx.Conflict("request_in_progress", "a request with this Idempotency-Key is still in progress")
	}
	return &storedResponse{status: *status, body: body}, nil
}

// idSource hands out the ids a request's events and entities get: random UUIDv7 normally,
// name-based UUIDs derived from the Idempotency-Key when there is one.
type idSource struct {
	seed uuid.UUID
	n    int
}

func (g *idSource) next() string {
	g.n++
	if g.seed == uuid.Nil {
		return uuid.Must(uuid.NewV7()).String()
	}
	return uuid.NewSHA1(g.seed, fmt.Appendf(nil, "%d", g.n)).String()
}

func ids(c *fiber.Ctx) *idSource {
	if g, ok := c.Locals(idsKey).(*idSource); ok {
		return g
	}
	return &idSource{}
}

// newEvent builds an envelope whose id comes from the request's id source.
func newEvent(c *fiber.Ctx, ticketID, runID string, payload events.Payload) (events.Envelope, error) {
	env, err := events.New(ticketID, runID, httpx.Claims(c).Subject(), payload)
	if err != nil {
		return env, err
	}
	env.ID = ids(c).next()
	return env, nil
}
