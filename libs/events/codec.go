package events

import (
	"encoding/json"
	"fmt"
	"time"
)

// Header is one Kafka record header. The codec does not depend on a Kafka client.
type Header struct {
	Key   string
	Value []byte
}

// CloudEvents Kafka protocol binding, binary content mode: the envelope stays the value and
// the CloudEvents attributes travel as ce_* headers, so any CloudEvents-aware consumer (or
// kcat) can route on them without parsing JSON.
const (
	HeaderID          = "ce_id"
	HeaderType        = "ce_type"
	HeaderSource      = "ce_source"
	HeaderTime        = "ce_time"
	HeaderSpecVersion = "ce_specversion"
	HeaderSubject     = "ce_subject"
	HeaderContentType = "content-type"
	HeaderTraceparent = "traceparent"

	// Source is the CloudEvents source of every ticketflow event.
	Source = "urn:ticketflow"
	// CETypePrefix namespaces ce_type, e.g. "io.ticketflow.StepStarted.v1".
	CETypePrefix = "io.ticketflow."
)

// Encode returns the record value and headers for an envelope. traceparent may be empty.
func Encode(e Envelope, traceparent string) ([]byte, []Header, error) {
	if err := e.Validate(); err != nil {
		return nil, nil, err
	}
	value, err := json.Marshal(e)
	if err != nil {
		return nil, nil, fmt.Errorf("events: encode envelope %s: %w", e.ID, err)
	}
	headers := []Header{
		{HeaderSpecVersion, []byte("1.0")},
		{HeaderID, []byte(e.ID)},
		{HeaderType, []byte(fmt.Sprintf("%s%s.v%d", CETypePrefix, e.Type, e.Version))},
		{HeaderSource, []byte(Source)},
		{HeaderTime, []byte(e.OccurredAt.UTC().Format(time.RFC3339Nano))},
		{HeaderSubject, []byte(e.TicketID)},
		{HeaderContentType, []byte("application/json")},
	}
	if traceparent != "" {
		headers = append(headers, Header{HeaderTraceparent, []byte(traceparent)})
	}
	return value, headers, nil
}

// DecodeEnvelope parses a record value. The envelope is the source of truth; headers are a
// convenience for routing and are not needed to decode.
func DecodeEnvelope(value []byte) (Envelope, error) {
	var e Envelope
	if err := unmarshal(value, &e); err != nil {
		return Envelope{}, fmt.Errorf("events: decode envelope: %w", err)
	}
	if err := e.Validate(); err != nil {
		return Envelope{}, err
	}
	return e, nil
}
