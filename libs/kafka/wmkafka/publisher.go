package wmkafka

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrClosed is returned by Publish and Subscribe after Close.
var ErrClosed = errors.New("wmkafka: closed")

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Brokers are the seed brokers.
	Brokers []string
	// Marshaler turns messages into records; nil means DefaultMarshaler{} (key from the
	// "partition_key" metadata, else the UUID).
	Marshaler Marshaler
	// Options are appended to the client options of libs/kafka.NewClient (acks=all,
	// idempotent producer, no linger, 15 s delivery timeout).
	Options []kgo.Opt
}

// Publisher is a Watermill message.Publisher on a franz-go client. Publish returns only
// once every record is acknowledged by all in-sync replicas: the cost is one round trip per
// call, the gain is that a nil error means the messages are durable (what a handler's ack
// of its input relies on).
type Publisher struct {
	cl        *kgo.Client
	marshaler Marshaler

	mu     sync.RWMutex // guards closed against in-flight Publish calls
	closed bool
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher connects lazily: the first Publish dials the brokers.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	cl, err := kafka.NewClient(config.Kafka{Brokers: cfg.Brokers}, cfg.Options...)
	if err != nil {
		return nil, err
	}
	m := cfg.Marshaler
	if m == nil {
		m = DefaultMarshaler{}
	}
	return &Publisher{cl: cl, marshaler: m}, nil
}

// Publish writes msgs to topic in order and waits for all of them to be acknowledged.
// Messages with the same key keep their order (idempotent producer, one partition). On error
// some messages may have been written; publishing again can duplicate them.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	recs := make([]*kgo.Record, 0, len(msgs))
	for _, msg := range msgs {
		rec, err := p.marshaler.Marshal(topic, msg)
		if err != nil {
			return fmt.Errorf("wmkafka: marshal message %s: %w", msg.UUID, err)
		}
		recs = append(recs, rec)
	}
	// Not the messages' contexts: a handler's message context ends when it is acked, and a
	// cancelled produce would report failure for records the broker may still write. The
	// client's delivery timeout bounds the wait instead.
	if err := p.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		return fmt.Errorf("wmkafka: publish to %s: %w", topic, err)
	}
	return nil
}

// Close waits for in-flight Publish calls and closes the client. It is idempotent.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.cl.Close()
	return nil
}
