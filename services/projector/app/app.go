// Package app is what the projector does with the event log: it folds each partition's
// records into the projections (tickets, runs, step_runs and the ticket_events audit trail).
// A partition's batch is applied in one transaction together with the partition's next
// offset, so a crash at any point neither loses nor doubles a row, and a redelivered record
// is recognised and skipped. The SQL is in adapters, the Kafka consumer in ports.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Record is one record of a partition as the consumer read it.
type Record struct {
	Offset int64
	// Control is a transaction marker: nothing to project, but consumed.
	Control bool
	// Event is the record's envelope; Err is why it could not be read (Event is then unset).
	Event events.Event
	Err   error
	// Value and Headers are the record as stored, kept verbatim in the audit trail.
	Value   []byte
	Headers map[string]string
}

// Store is the projection database (adapters.Store).
type Store interface {
	// Offsets are the next offsets to project, by partition.
	Offsets(ctx context.Context) (map[int32]int64, error)
	// StaleOffsets counts the stored offsets written for another topic id.
	StaleOffsets(ctx context.Context, topicID string) (int, error)
	// ForgetOffsets deletes the stored offsets: the topic is projected from its start.
	ForgetOffsets(ctx context.Context) error
	// InBatch runs fn in one transaction holding the lock of partition's offset row.
	InBatch(ctx context.Context, partition int32, fn func(Batch) error) error
}

// Finish is how a run ended, for Batch.FinishRun.
type Finish struct {
	Status, Message, Error, Branch string
}

// Application applies batches of records to the projections.
type Application struct {
	store   Store
	log     *slog.Logger
	metrics metrics
}

type metrics struct {
	applied prometheus.Counter
	skipped *prometheus.CounterVec
	batchMS prometheus.Histogram
}

// New is the application over store; its metrics are registered in reg when not nil.
func New(store Store, log *slog.Logger, reg prometheus.Registerer) *Application {
	a := &Application{store: store, log: log, metrics: metrics{
		applied: prometheus.NewCounter(prometheus.CounterOpts{Name: "ticketflow_projector_events_applied_total", Help: "Events written to the projection tables."}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ticketflow_projector_events_skipped_total", Help: "Records skipped, by reason."}, []string{"reason"}),
		batchMS: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ticketflow_projector_batch_seconds", Help: "Time to apply one partition batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
	}}
	// Every reason is exposed from the start (at 0), so an alert on a rate of skips has a series.
	for _, reason := range []string{"duplicate", "duplicate_event_id", "malformed", "unknown_type", "bad_payload"} {
		a.metrics.skipped.WithLabelValues(reason)
	}
	if reg != nil {
		reg.MustRegister(a.metrics.applied, a.metrics.skipped, a.metrics.batchMS)
	}
	return a
}

// StoredOffsets are the next offsets to project, by partition: exactly where the committed
// rows end.
func (a *Application) StoredOffsets(ctx context.Context) (map[int32]int64, error) {
	return a.store.Offsets(ctx)
}

// ErrTopicRecreated stops the projector when the topic's id differs from the one its stored
// offsets belong to.
var ErrTopicRecreated = errors.New("projector: the topic was recreated (new topic id) since the stored offsets were written")

// CheckTopic makes sure the stored offsets belong to the topic with id topicID. When they
// do not (the topic was deleted and recreated) it fails with ErrTopicRecreated, unless reset
// says to project the new topic from its start.
func (a *Application) CheckTopic(ctx context.Context, topic, topicID string, reset bool) error {
	stale, err := a.store.StaleOffsets(ctx, topicID)
	if err != nil {
		return err
	}
	if stale == 0 {
		return nil
	}
	if !reset {
		return fmt.Errorf("%w; set TICKETFLOW_PROJECTOR_RESET_ON_TOPIC_CHANGE=true to project the new topic from its start", ErrTopicRecreated)
	}
	a.log.Warn("topic recreated: projecting the new topic from its start", "topic", topic, "topic_id", topicID)
	return a.store.ForgetOffsets(ctx)
}

// ApplyBatch writes one partition's records (of the topic with id topicID) and the
// partition's next offset atomically. Records below the stored offset were applied before
// and are skipped.
func (a *Application) ApplyBatch(ctx context.Context, topicID string, partition int32, recs []Record) (err error) {
	start := time.Now()
	ctx, span := batchSpan(ctx, partition, recs)
	defer func() {
		telemetry.RecordError(span, err)
		span.End()
	}()
	err = a.store.InBatch(ctx, partition, func(b Batch) error {
		next, err := b.NextOffset(ctx)
		if err != nil {
			return err
		}
		last := int64(-1)
		var readable []Record
		for _, rec := range recs {
			switch {
			case rec.Offset < next:
				a.metrics.skipped.WithLabelValues("duplicate").Inc()
				continue
			case rec.Err != nil:
				// No ticket to belong to, and a poison record must not stop the projection.
				a.log.Warn("skipping unreadable record", "partition", partition, "offset", rec.Offset, "err", rec.Err)
				a.metrics.skipped.WithLabelValues("malformed").Inc()
			case !rec.Control:
				readable = append(readable, rec)
			}
			last = rec.Offset
		}
		if last < 0 {
			return nil
		}
		if err := a.applyAll(ctx, b, topicID, readable); err != nil {
			return fmt.Errorf("partition %d: %w", partition, err)
		}
		return b.SetNextOffset(ctx, last+1, topicID)
	})
	telemetry.Observe(ctx, a.metrics.batchMS, time.Since(start).Seconds())
	return err
}

// batchSpan is the span of one partition batch: a child of the trace of its first record that
// carries one (its traceparent header), linked to every record's, so a run's trace shows where
// its events were projected.
func batchSpan(ctx context.Context, partition int32, recs []Record) (context.Context, trace.Span) {
	parent := ctx
	var links []trace.Link
	for _, rec := range recs {
		sc := recordSpanContext(rec.Headers)
		if !sc.IsValid() {
			continue
		}
		if len(links) == 0 {
			parent = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
		links = append(links, trace.Link{SpanContext: sc})
	}
	return telemetry.Tracer().Start(parent, "projector batch", trace.WithLinks(links...), trace.WithAttributes(
		attribute.Int("messaging.destination.partition.id", int(partition)), attribute.Int("messaging.batch.message_count", len(recs))))
}

// recordSpanContext is the W3C trace context in a record's headers (invalid when none).
func recordSpanContext(headers map[string]string) trace.SpanContext {
	if headers[events.HeaderTraceparent] == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier(headers))
	return trace.SpanContextFromContext(ctx)
}

// applyAll writes records verbatim into ticket_events (all at once), then, in log order, the
// effect on the projections of each that was not recorded before.
func (a *Application) applyAll(ctx context.Context, b Batch, topicID string, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	rows := make([]AuditRow, len(recs))
	for i, rec := range recs {
		headers := rec.Headers
		if headers == nil {
			headers = map[string]string{}
		}
		hdrJSON, _ := json.Marshal(headers)
		rows[i] = AuditRow{Event: rec.Event, Value: rec.Value, Headers: hdrJSON}
	}
	fresh, err := b.Record(ctx, topicID, rows)
	if err != nil {
		return err
	}
	for i, rec := range recs {
		if !fresh[i] {
			// Same event id seen before (a producer retry after a crash): its effect is applied.
			a.metrics.skipped.WithLabelValues("duplicate_event_id").Inc()
			continue
		}
		if err := a.apply(ctx, b, rec); err != nil {
			return fmt.Errorf("offset %d: %w", rec.Offset, err)
		}
	}
	return nil
}

// apply applies one recorded event's effect on the projections.
func (a *Application) apply(ctx context.Context, b Batch, rec Record) error {
	ev := rec.Event
	payload, err := ev.Decode()
	if errors.Is(err, events.ErrUnknown) {
		a.metrics.skipped.WithLabelValues("unknown_type").Inc()
		return nil // kept verbatim in the audit trail, no projection effect
	}
	if err != nil {
		a.log.Warn("event payload unreadable; kept in audit trail only", "event_id", ev.ID, "err", err)
		a.metrics.skipped.WithLabelValues("bad_payload").Inc()
		return nil
	}
	traceID := ""
	if sc := recordSpanContext(rec.Headers); sc.IsValid() {
		traceID = sc.TraceID().String()
	}
	if err := project(ctx, b, ev, payload, traceID); err != nil {
		return err
	}
	a.metrics.applied.Inc()
	return nil
}
