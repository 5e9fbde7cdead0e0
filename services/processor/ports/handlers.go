// Package ports is what drives the processor: its Kafka consumer, a Watermill router with one
// handler on the event topic that decodes each event and calls the application.
package ports

import (
	"context"
	"errors"
	"log/slog"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka/wmkafka"
	"github.com/ticketflow/ticketflow/services/processor/app"
)

const poisonSuffix = ".processor-poison"

// Router consumes the event topic for the application.
type Router struct {
	app    *app.Application
	log    *slog.Logger
	router *message.Router
	sub    message.Subscriber
	poison message.Publisher
}

// NewRouter assembles the processor's Watermill router: one handler on topic, with retry,
// recoverer and poison-queue middleware from libs/kafka/wmkafka. Messages the router gives
// up on go to poison; Close closes sub and poison.
func NewRouter(log *slog.Logger, a *app.Application, topic string, sub message.Subscriber, poison message.Publisher) (*Router, error) {
	router, err := wmkafka.NewRouter(log, poison, topic+poisonSuffix)
	if err != nil {
		return nil, err
	}
	r := &Router{app: a, log: log, router: router, sub: sub, poison: poison}
	router.AddConsumerHandler("processor", topic, sub, r.handleMessage)
	return r, nil
}

// Run consumes until ctx ends.
func (r *Router) Run(ctx context.Context) error { return r.router.Run(ctx) }

// Running is closed once the router consumes.
func (r *Router) Running() <-chan struct{} { return r.router.Running() }

// Close stops the router and closes its subscriber and poison publisher.
func (r *Router) Close() error {
	return errors.Join(r.router.Close(), r.sub.Close(), r.poison.Close())
}

// handleMessage dispatches one event. Errors are retried by the middleware, then poisoned.
func (r *Router) handleMessage(msg *message.Message) error {
	env, err := events.DecodeEnvelope(msg.Payload)
	if err != nil {
		r.log.Warn("skipping unreadable record", "err", err)
		return nil
	}
	partition, _ := strconv.ParseInt(msg.Metadata.Get("kafka_partition"), 10, 32)
	offset, _ := strconv.ParseInt(msg.Metadata.Get("kafka_offset"), 10, 64)
	ev := events.Event{Envelope: env, Position: events.Position{Partition: int32(partition), Offset: offset}}
	payload, err := env.Decode()
	if errors.Is(err, events.ErrUnknown) {
		return nil
	}
	if err != nil {
		r.log.Warn("skipping event with unreadable payload", "event_id", env.ID, "err", err)
		return nil
	}
	ctx := msg.Context()
	switch d := payload.(type) {
	case *events.TicketCreatedData:
		return r.app.SaveTicket(ctx, env.TicketID, d)
	case *events.ProcessingRequestedData:
		return r.app.RequestRun(ctx, ev)
	case *events.CancelRequestedData:
		return r.app.RequestCancel(ctx, env.RunID, d.RequestedBy)
	case *events.ChangesRequestedData:
		return r.app.AddFeedback(ctx, env.TicketID, env.ID, ev.Offset, d.Comment)
	}
	return nil
}
