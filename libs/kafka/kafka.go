// Package kafka is ticketflow's Kafka plumbing on franz-go: clients configured the same way
// everywhere, topic creation with kadm, and the durable append every producer goes through.
// Code here works unchanged against Apache Kafka and against the embedded kfake broker.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// NewClient returns a franz-go client for the configured brokers. Producing is idempotent
// (franz-go's default) with acks=all, so a record acknowledged is replicated to every in-sync
// replica and a retried batch is never written twice. Extra options (consumer settings) are
// appended. Every client is traced and measured (see Instrument). Consumers read committed data only: records of a transaction become visible when
// it commits, and never if it aborts (see TxnProducer).
func NewClient(cfg config.Kafka, extra ...kgo.Opt) (*kgo.Client, error) {
	return newClient(cfg, true, extra...)
}

// newClient is NewClient; measured says whether the client reports kprom metrics (a
// short-lived client does not: its series would appear and vanish with it).
func newClient(cfg config.Kafka, measured bool, extra ...kgo.Opt) (*kgo.Client, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers configured (KAFKA_BROKERS)")
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(15 * time.Second),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.ClientID("ticketflow"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}
	opts = append(opts, clientHooks(measured)...)
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: new client: %w", err)
	}
	return cl, nil
}

// BatchedFetches are the fetch options of the consumers that no client waits on record by
// record (the projector, the processor): a fetch returns once 64 KiB have gathered or 10 ms
// have passed, so under load it carries many records instead of one. Per-fetch work (the
// broker's response, the client's request and decoding, the consumer's batch) is most of
// their cost per event; an isolated event waits at most the 10 ms. The notifier, whose
// clients see every event as it comes, keeps the default (answer as soon as anything is new).
func BatchedFetches() []kgo.Opt {
	return []kgo.Opt{kgo.FetchMaxWait(10 * time.Millisecond), kgo.FetchMinBytes(64 << 10)}
}

// EnsureTopic creates the topic if it does not exist. An existing topic is left as it is.
func EnsureTopic(ctx context.Context, cl *kgo.Client, cfg config.Kafka) error {
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopic(ctx, cfg.Partitions, cfg.ReplicationFactor, nil, cfg.Topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("kafka: create topic %q: %w", cfg.Topic, err)
	}
	return nil
}

// WaitReady pings the cluster until it answers or ctx ends, logging while it waits.
func WaitReady(ctx context.Context, cl *kgo.Client, log *slog.Logger) error {
	for attempt := 1; ; attempt++ {
		pingCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := cl.Ping(pingCtx)
		cancel()
		if err == nil {
			return nil
		}
		if attempt == 1 || attempt%10 == 0 {
			log.Warn("waiting for Kafka", "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka: brokers unreachable: %w", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// TopicID returns the topic's unique id; a recreated topic has a new one.
func TopicID(ctx context.Context, cl *kgo.Client, topic string) (string, error) {
	details, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return "", fmt.Errorf("kafka: describe topic %q: %w", topic, err)
	}
	d, ok := details[topic]
	if !ok || d.Err != nil {
		return "", fmt.Errorf("kafka: topic %q not found: %v", topic, d.Err)
	}
	return d.ID.String(), nil
}

// Record turns an envelope into a record keyed by ticket id, so every event of a ticket lands
// on one partition in append order.
func Record(topic string, env events.Envelope, traceparent string) (*kgo.Record, error) {
	value, headers, err := events.Encode(env, traceparent)
	if err != nil {
		return nil, err
	}
	rec := &kgo.Record{Topic: topic, Key: []byte(env.TicketID), Value: value, Timestamp: env.OccurredAt}
	for _, h := range headers {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return rec, nil
}

// Event decodes a consumed record. Callers skip records for which errors.Is(err, events.ErrUnknown)
// or which fail to decode; a poison record must never stop a consumer.
func Event(rec *kgo.Record) (events.Event, error) {
	env, err := events.DecodeEnvelope(rec.Value)
	if err != nil {
		return events.Event{}, fmt.Errorf("record %s/%d@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
	}
	return events.Event{Envelope: env, Position: events.Position{Partition: rec.Partition, Offset: rec.Offset}}, nil
}
