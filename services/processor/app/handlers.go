package app

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/kafka/wmkafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

const poisonSuffix = ".processor-poison"

// newRouter assembles the processor's Watermill router: one handler on the event topic, with
// retry, recoverer and poison-queue middleware from libs/kafka/wmkafka.
func newRouter(p *Processor) (*message.Router, error) {
	router, err := wmkafka.NewRouter(p.log, p.deps.Poison, p.deps.Kafka.Topic+poisonSuffix)
	if err != nil {
		return nil, err
	}
	router.AddConsumerHandler("processor", p.deps.Kafka.Topic, p.deps.Subscriber, p.handleMessage)
	return router, nil
}

// handleMessage dispatches one event. Errors are retried by the middleware, then poisoned.
func (p *Processor) handleMessage(msg *message.Message) error {
	env, err := events.DecodeEnvelope(msg.Payload)
	if err != nil {
		p.log.Warn("skipping unreadable record", "err", err)
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
		p.log.Warn("skipping event with unreadable payload", "event_id", env.ID, "err", err)
		return nil
	}
	ctx := msg.Context()
	switch d := payload.(type) {
	case *events.TicketCreatedData:
		return p.store.saveTicket(ctx, env.TicketID, d)
	case *events.ProcessingRequestedData:
		return p.onRequested(ctx, ev)
	case *events.CancelRequestedData:
		ok, err := p.store.requestCancel(ctx, env.RunID, d.RequestedBy)
		if err == nil && ok {
			p.log.Info("cancel requested", "run_id", env.RunID, "by", d.RequestedBy)
		}
		return err
	case *events.ChangesRequestedData:
		return p.store.addFeedback(ctx, env.TicketID, env.ID, ev.Offset, d.Comment)
	}
	return nil
}

// onRequested accepts or rejects a run request, then drives the run (a rejected run is
// driven straight to appending its stored RunRejected).
func (p *Processor) onRequested(ctx context.Context, ev events.Event) error {
	if ev.RunID == "" {
		return nil
	}
	rejection := func(reason, active string) (events.Envelope, error) {
		return events.New(ev.TicketID, ev.RunID, p.actor, &events.RunRejectedData{Reason: reason, ActiveRunID: active})
	}
	deadline := time.Now().Add(activeRunSettleTimeout)
	for {
		out, err := p.store.acceptRun(ctx, ev, p.cfg.Lease, time.Now().Before(deadline), rejection)
		if err != nil {
			return err
		}
		if out.Drive {
			p.startDriver(p.runCtx, ev.RunID)
		}
		if !out.Wait {
			return nil // driven here, or stored for a less loaded processor to claim
		}
		// The active run is appending its terminal event: the request most likely follows
		// it, so wait (up to the deadline, then reject) for the ticket to be free.
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// activeRunSettleTimeout bounds how long a request waits for the ticket's previous run to
// confirm its terminal event.
const activeRunSettleTimeout = 10 * time.Second

// logHasEvent scans a partition from an offset to its end for an event that matches. The
// caller holds the run's producer, so every earlier producer of the run is fenced and what it
// appended is decided: the scan sees it if it was committed.
func (p *Processor) logHasEvent(ctx context.Context, partition int32, from int64, match func(events.Envelope) bool) (bool, error) {
	found := false
	err := kafka.ScanPartition(ctx, p.scan, p.deps.Kafka.Topic, partition, from, kafka.ScanToEnd, func(rec *kgo.Record) (bool, error) {
		if e, err := events.DecodeEnvelope(rec.Value); err == nil && match(e) {
			found = true
		}
		return !found, nil
	})
	return found, err
}
