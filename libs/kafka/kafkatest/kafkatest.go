// Package kafkatest starts what an integration test needs from Kafka: the embedded broker on
// a free loopback port, a client and the event topic, all closed when the test ends.
package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Broker is a running embedded broker with the topic "ticket-events" created.
type Broker struct {
	Embedded *kafka.Embedded
	Config   config.Kafka
	Client   *kgo.Client
	Producer *kafka.Producer
}

// Start runs an in-memory broker whose topic has the given number of partitions.
func Start(t testing.TB, partitions int32) *Broker {
	t.Helper()
	emb, err := kafka.StartEmbedded("127.0.0.1:0", "", int(partitions), kafka.Persistence{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	cfg := config.Kafka{Brokers: emb.Addrs(), Topic: "ticket-events", Partitions: partitions, ReplicationFactor: -1}
	cl, err := kafka.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopic(ctx, cl, cfg); err != nil {
		t.Fatal(err)
	}
	return &Broker{Embedded: emb, Config: cfg, Client: cl, Producer: kafka.NewProducer(cl, cfg.Topic)}
}
