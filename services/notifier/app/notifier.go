// Package app is the notifier's use cases: it applies the event topic (every partition, no
// consumer group, so every replica sees everything), keeps each ticket's recent history in
// bounded memory, and opens sessions that get live messages plus an exact replay from any
// cursor still in the event log. Transport (the WebSocket routes) is in ports, Kafka and SQL
// in adapters.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Record is one record of the event topic as the log hands it over, undecoded (replays decode
// in parallel). Control records (transaction markers) only move a partition's position.
type Record struct {
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Control   bool
	// Ctx carries the record's trace context (nil: none).
	Ctx context.Context
	// CaughtUp says no record followed this one in its fetch: the consumer is at the log's
	// end, and the message may be written inline to idle connections. Behind a backlog the
	// connections' writers batch many messages per write instead.
	CaughtUp bool
}

// event decodes the record's envelope.
func (r Record) event() (events.Event, error) {
	env, err := events.DecodeEnvelope(r.Value)
	if err != nil {
		return events.Event{}, fmt.Errorf("record %d@%d: %w", r.Partition, r.Offset, err)
	}
	return events.Event{Envelope: env, Position: events.Position{Partition: r.Partition, Offset: r.Offset}}, nil
}

// EventLog is the event topic (adapters.LogReader).
type EventLog interface {
	// Consume hands every record of every partition, from the log start, to apply (in log
	// order per partition) until ctx ends.
	Consume(ctx context.Context, apply func(Record)) error
	// Ends are the last stable offsets of every partition; Starts their log start offsets.
	Ends(ctx context.Context) (map[int32]int64, error)
	Starts(ctx context.Context) (map[int32]int64, error)
	// Read calls fn with each committed record of partition p with from <= offset <= to, in
	// log order; ErrHistoryGone when from is below the log start.
	Read(ctx context.Context, p int32, from, to int64, fn func(Record) error) error
}

// ErrHistoryGone means the requested offset is below the partition's log start: retention or
// a DeleteRecords removed it, and no source can replay it exactly any more.
var ErrHistoryGone = errors.New("history no longer in the event log")

// Owners answers for tickets whose TicketCreated is no longer in the log (adapters.Owners).
type Owners interface {
	Owner(ctx context.Context, ticketID string) (owner string, partition int32, found bool, err error)
}

// Deps are what the notifier is wired to.
type Deps struct {
	Log *slog.Logger
	// EventLog is required.
	EventLog EventLog
	// Owners is optional (without it, tickets older than the log answer 4404).
	Owners  Owners
	Metrics *Metrics
}

// Notifier holds the hub (positions, ticket index, histories, subscribers) and serves sessions.
type Notifier struct {
	cfg     Config
	log     *slog.Logger
	m       *Metrics
	hub     *hub
	events  EventLog
	owners  Owners
	ready   atomic.Bool
	running atomic.Bool
	// inline is apply's list of sessions owed an inline write (the consumer goroutine's own).
	inline []subscriber
}

// New builds a notifier; Run must be called for it to receive events.
func New(cfg Config, deps Deps) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.EventLog == nil || deps.Metrics == nil {
		return nil, errors.New("notifier: an event log and metrics are required")
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	return &Notifier{
		cfg:    cfg,
		log:    deps.Log.With("service", "notifier"),
		m:      deps.Metrics,
		hub:    newHub(cfg, deps.Metrics),
		events: deps.EventLog,
		owners: deps.Owners,
	}, nil
}

// Ready reports whether the live consumer has caught up with the log as it was when Run
// started (for /readyz). Connections are served before that too, exactly: they wait for the
// partitions they need.
func (n *Notifier) Ready() bool { return n.ready.Load() }

// Run consumes every partition of the topic from the log start until ctx ends, then closes
// every session with 1001 (going away) so clients resume elsewhere.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return errors.New("notifier: Run called twice")
	}
	defer n.shutdown()
	go n.watchReady(ctx)
	return n.events.Consume(ctx, n.apply)
}

func (n *Notifier) apply(rec Record) {
	if rec.Control {
		n.hub.advance(rec.Partition, rec.Offset)
		return
	}
	n.m.consumedEvents.Inc()
	ev, err := rec.event()
	if err != nil {
		n.log.Warn("skipping undecodable record", "err", err)
		n.hub.advance(rec.Partition, rec.Offset)
		return
	}
	it, ok := newItem(ev)
	if !ok {
		n.hub.advance(rec.Partition, rec.Offset)
		return
	}
	ctx := rec.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	// The hand-over of the event to every subscribed socket's send queue, in the trace of
	// whoever appended it (a run's trace ends with the delivery of its terminal event).
	_, span := telemetry.Tracer().Start(ctx, "notifier deliver "+string(ev.Type), trace.WithAttributes(
		attribute.String("ticketflow.event.type", string(ev.Type)), attribute.String("ticketflow.ticket_id", ev.TicketID),
		attribute.String("ticketflow.run_id", ev.RunID)))
	sessions := n.hub.apply(&ev, it, rec.CaughtUp, &n.inline)
	for i, s := range n.inline {
		s.writeInline(it)
		n.inline[i] = nil
	}
	n.inline = n.inline[:0]
	span.SetAttributes(attribute.Int("ticketflow.notifier.sessions", sessions))
	span.End()
}

// watchReady flips Ready once the consumer reached the end offsets seen at startup.
func (n *Notifier) watchReady(ctx context.Context) {
	for ctx.Err() == nil {
		ends, err := n.events.Ends(ctx)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
				continue
			}
		}
		starts, _ := n.events.Starts(ctx)
		for p, end := range ends {
			if end <= starts[p] {
				continue // nothing to consume on p
			}
			if !n.hub.waitPosition(ctx, p, end-1) {
				return
			}
		}
		n.ready.Store(true)
		n.log.Info("notifier caught up with the event log", "partitions", len(ends))
		return
	}
}

func (n *Notifier) shutdown() {
	for _, s := range n.hub.close() {
		if ss, ok := s.(*Session); ok {
			ss.Stop(CloseGoingAway, "server shutting down: resume with your last cursor")
		}
	}
}

// WaitPosition blocks until the live consumer has applied partition p up to offset off, or
// ctx ends (false).
func (n *Notifier) WaitPosition(ctx context.Context, p int32, off int64) bool {
	return n.hub.waitPosition(ctx, p, off)
}

// RunStart is the offset of the ticket's latest TicketProcessingRequested (-1: none).
func (n *Notifier) RunStart(ticketID string) int64 {
	if info := n.hub.lookup(ticketID); info.known {
		return info.runStart
	}
	return -1
}

// Subscribers counts the sessions subscribed to one ticket.
func (n *Notifier) Subscribers(ticketID string) int {
	n.hub.mu.Lock()
	defer n.hub.mu.Unlock()
	if t := n.hub.tickets[ticketID]; t != nil {
		return len(t.subs)
	}
	return 0
}

// catchUp waits until the live consumer has applied everything that was in partitions ps
// (all partitions when ps is nil) at the time of the call. It bounds the race between a
// client and the consumer: a ticket created or an event appended before the connect is known
// before the connect is served.
func (n *Notifier) catchUp(ctx context.Context, ps ...int32) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.CatchUpTimeout)
	defer cancel()
	ends, err := n.events.Ends(ctx)
	if err != nil {
		return fmt.Errorf("list end offsets: %w", err)
	}
	if ps == nil {
		for p := range ends {
			ps = append(ps, p)
		}
	}
	for _, p := range ps {
		end, ok := ends[p]
		if !ok || end <= 0 || n.hub.position(p) >= end-1 {
			continue
		}
		if !n.hub.waitPosition(ctx, p, end-1) {
			// A partition emptied by retention has nothing to consume: not a lag.
			starts, err := n.events.Starts(context.Background())
			if err == nil && starts[p] >= end {
				continue
			}
			return errCatchingUp
		}
	}
	return nil
}

var errCatchingUp = errors.New("the notifier is still catching up with the event log")

// ownerFromDB asks the projection for a ticket the log no longer describes.
func (n *Notifier) ownerFromDB(ctx context.Context, id string) (owner string, partition int32, found bool, err error) {
	if n.owners == nil {
		return "", 0, false, nil
	}
	return n.owners.Owner(ctx, id)
}
