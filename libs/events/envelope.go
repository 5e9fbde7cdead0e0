// Package events is ticketflow's event catalog: the envelope every fact is wrapped in, every
// event type with its payload and version, and the codec that turns them into Kafka records
// with CloudEvents headers. Producers and consumers import this package; no other package
// spells an event type as a string.
package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Envelope is the JSON value of every record on the event topic.
type Envelope struct {
	ID         string          `json:"id"`
	Type       Type            `json:"type"`
	Version    int             `json:"version"`
	TicketID   string          `json:"ticket_id"`
	RunID      string          `json:"run_id,omitempty"`
	OccurredAt time.Time       `json:"occurred_at"`
	Actor      string          `json:"actor"`
	Data       json.RawMessage `json:"data"`
}

// Position is where a record sits in the log. It is filled by consumers, never encoded.
type Position struct {
	Partition int32
	Offset    int64
}

// Event is an envelope together with the position it was read from.
type Event struct {
	Envelope
	Position
}

// New wraps a payload in an envelope with a fresh UUIDv7 (time-ordered) id.
func New(ticketID, runID, actor string, payload Payload) (Envelope, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Envelope{}, fmt.Errorf("events: new id: %w", err)
	}
	data, err := json.Marshal(payload)
	if err != nil {
		return Envelope{}, fmt.Errorf("events: encode %s payload: %w", payload.EventType(), err)
	}
	return Envelope{
		ID:         id.String(),
		Type:       payload.EventType(),
		Version:    CurrentVersion(payload.EventType()),
		TicketID:   ticketID,
		RunID:      runID,
		OccurredAt: time.Now().UTC(),
		Actor:      actor,
		Data:       data,
	}, nil
}

// MustNew is New for payloads that cannot fail to encode (every catalog payload is plain data).
func MustNew(ticketID, runID, actor string, payload Payload) Envelope {
	env, err := New(ticketID, runID, actor, payload)
	if err != nil {
		panic(err)
	}
	return env
}

// ErrUnknown marks an event whose type or version this build does not understand.
// Consumers skip such events rather than failing: a newer producer must not stop older consumers.
var ErrUnknown = errors.New("events: unknown type or version")

// Decode parses the payload of a known event type. It returns ErrUnknown (wrapped) for types
// or versions this build does not know.
func (e Envelope) Decode() (Payload, error) {
	spec, ok := catalog[e.Type]
	if !ok || e.Version < 1 || e.Version > spec.version {
		return nil, fmt.Errorf("%w: %s v%d", ErrUnknown, e.Type, e.Version)
	}
	p := spec.newPayload()
	if len(e.Data) > 0 && string(e.Data) != "null" {
		if err := unmarshal(e.Data, p); err != nil {
			return nil, fmt.Errorf("events: decode %s payload of event %s: %w", e.Type, e.ID, err)
		}
	}
	return p, nil
}

// Validate checks the envelope fields every consumer relies on.
func (e Envelope) Validate() error {
	switch {
	case e.ID == "":
		return errors.New("events: envelope without id")
	case uuid.Validate(e.ID) != nil:
		return fmt.Errorf("events: envelope id %q is not a UUID", e.ID)
	case e.Type == "":
		return errors.New("events: envelope without type")
	case e.TicketID == "":
		return fmt.Errorf("events: %s envelope %s without ticket_id", e.Type, e.ID)
	case e.OccurredAt.IsZero():
		return fmt.Errorf("events: %s envelope %s without occurred_at", e.Type, e.ID)
	}
	return nil
}
