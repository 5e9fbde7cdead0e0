// Package wmkafka is a Watermill publisher and subscriber on franz-go, so ticketflow's
// consumers can use Watermill's router and middleware (retry, poison queue, recoverer) on
// the same Kafka client and settings as the rest of the code.
//
// Why not watermill-kafka: it is built on Sarama, a second Kafka client with its own
// configuration and its own behaviour against the embedded kfake broker.
//
// Guarantees: Publish returns after acks=all with an idempotent producer. The Subscriber
// delivers each partition's messages one at a time in offset order, waits for Ack or Nack,
// and commits only acked offsets (at-least-once; handlers must tolerate a redelivery).
// Records written by libs/kafka.Producer are read as messages whose UUID is the event id
// (ce_id header) and whose metadata holds the CloudEvents headers.
package wmkafka
