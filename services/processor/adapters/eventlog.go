package adapters

import (
	"context"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
)

// EventLog reads the event topic back through one long-lived client (no consumer, no group:
// libs/kafka's ScanPartition).
type EventLog struct {
	cl    *kgo.Client
	topic string
}

// NewEventLog opens the client; Close releases it.
func NewEventLog(cfg config.Kafka) (*EventLog, error) {
	cl, err := kafka.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	return &EventLog{cl: cl, topic: cfg.Topic}, nil
}

// HasEvent scans a partition from an offset to its end for an event that matches. The
// caller holds the run's producer, so every earlier producer of the run is fenced and what it
// appended is decided: the scan sees it if it was committed.
func (l *EventLog) HasEvent(ctx context.Context, partition int32, from int64, match func(events.Envelope) bool) (bool, error) {
	found := false
	err := kafka.ScanPartition(ctx, l.cl, l.topic, partition, from, kafka.ScanToEnd, func(rec *kgo.Record) (bool, error) {
		if e, err := events.DecodeEnvelope(rec.Value); err == nil && match(e) {
			found = true
		}
		return !found, nil
	})
	return found, err
}

// RequestTrace is the trace context of the record at partition/offset (a run's request), so a
// run resumed by another processor continues the trace its request started. Invalid when the
// record carries none.
func (l *EventLog) RequestTrace(ctx context.Context, partition int32, offset int64) (trace.SpanContext, error) {
	var sc trace.SpanContext
	err := kafka.ScanPartition(ctx, l.cl, l.topic, partition, offset, offset+1, func(rec *kgo.Record) (bool, error) {
		sc = kafka.RecordSpanContext(rec)
		return false, nil
	})
	return sc, err
}

// Close closes the client.
func (l *EventLog) Close() { l.cl.Close() }
