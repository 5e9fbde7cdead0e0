package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Append failures. ErrUnavailable: the records were failed before any broker could have
// written them — nothing was appended. ErrUnconfirmed: ctx ended while a request carrying
// them may have reached a broker; the idempotent producer keeps retrying it, so it may still
// be appended exactly once. Callers whose event ids are deterministic (an Idempotency-Key)
// can retry safely either way: consumers dedupe by event id.
var (
	ErrUnavailable = errors.New("event log unavailable")
	ErrUnconfirmed = errors.New("event log did not confirm the append in time")
)

// confirmGrace is how long Append waits, once ctx has ended, for records that the client
// can still fail safely (never sent) to report so.
const confirmGrace = 250 * time.Millisecond

// Producer appends envelopes to the event topic and returns once they are durable.
type Producer struct {
	cl    *kgo.Client
	topic string
}

// NewProducer wraps a client built by NewClient.
func NewProducer(cl *kgo.Client, topic string) *Producer { return &Producer{cl: cl, topic: topic} }

// Append writes the envelopes in order and waits for acks=all. Envelopes of one ticket keep
// their order (same key, same partition, idempotent producer). It returns each position.
func (p *Producer) Append(ctx context.Context, envs ...events.Envelope) ([]events.Position, error) {
	recs, err := records(p.topic, envs)
	if err != nil {
		return nil, err
	}
	if err := produceAll(ctx, p.cl, recs); err != nil {
		return nil, err
	}
	return positions(recs), nil
}

// records encodes envelopes as records of topic. Their trace context is not set here: the
// client's kotel hook injects ctx's span (traceparent, tracestate) when they are produced.
func records(topic string, envs []events.Envelope) ([]*kgo.Record, error) {
	recs := make([]*kgo.Record, 0, len(envs))
	for _, env := range envs {
		rec, err := Record(topic, env, "")
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// produceAll produces recs and waits for every ack. It returns an error wrapping
// ErrUnconfirmed when ctx ended with records possibly in flight, or wrapping ErrUnavailable
// (and every record error) when records failed.
func produceAll(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	// Not ProduceSync: an idempotent producer cannot fail a record whose request may have
	// reached the broker (e.g. written to a connection the broker just closed), so waiting for
	// the promise could outlast ctx by as long as the broker is down.
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	wg.Add(len(recs))
	for i, rec := range recs {
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			errs[i] = err
			wg.Done()
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		select {
		case <-done:
		case <-time.After(confirmGrace):
			return fmt.Errorf("%w: %w", ErrUnconfirmed, ctx.Err())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// positions are the records' positions once produced. Results come back in completion order,
// which differs from input order across partitions; the records themselves carry them.
func positions(recs []*kgo.Record) []events.Position {
	out := make([]events.Position, len(recs))
	for i, rec := range recs {
		out[i] = events.Position{Partition: rec.Partition, Offset: rec.Offset}
	}
	return out
}

// Topic is the topic appended to.
func (p *Producer) Topic() string { return p.topic }
