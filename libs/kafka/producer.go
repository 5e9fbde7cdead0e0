package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrUnavailable wraps every append failure: the broker did not acknowledge, so callers
// answer 503 and know nothing was appended... or, if the failure came after the broker wrote
// but before it acknowledged, the idempotent producer's retry did not duplicate it.
var ErrUnavailable = errors.New("event log unavailable")

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
	recs := make([]*kgo.Record, 0, len(envs))
	for _, env := range envs {
		rec, err := Record(p.topic, env, traceparent(ctx))
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	results := p.cl.ProduceSync(ctx, recs...)
	if err := results.FirstErr(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// Results come back in completion order, which differs from input order across
	// partitions; the records themselves carry their positions.
	out := make([]events.Position, len(recs))
	for i, rec := range recs {
		out[i] = events.Position{Partition: rec.Partition, Offset: rec.Offset}
	}
	return out, nil
}

// Client exposes the underlying client (for health checks).
func (p *Producer) Client() *kgo.Client { return p.cl }

// Topic is the topic appended to.
func (p *Producer) Topic() string { return p.topic }

type traceparentKey struct{}

// WithTraceparent attaches a W3C traceparent to ctx; Append copies it into record headers.
func WithTraceparent(ctx context.Context, tp string) context.Context {
	return context.WithValue(ctx, traceparentKey{}, tp)
}

func traceparent(ctx context.Context) string {
	tp, _ := ctx.Value(traceparentKey{}).(string)
	return tp
}
