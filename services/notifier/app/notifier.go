// Package app is the notifier: it consumes the event topic (every partition, no consumer
// group, so every replica sees everything), keeps each ticket's recent history in bounded
// memory, and serves WebSocket clients live messages plus an exact replay from any cursor
// still in the event log.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Deps are what the notifier is wired to.
type Deps struct {
	Log      *slog.Logger
	Verifier *auth.Verifier
	// Kafka has its brokers resolved and names the event topic.
	Kafka config.Kafka
	// DB is optional. It is asked for the owner of a ticket whose TicketCreated is no longer
	// in the log (retention), and records used WebSocket tickets (single use across
	// replicas; without it, per replica). Everything else comes from the log itself.
	DB *pgxpool.Pool
	// Registry receives the notifier's metrics (a fresh registry when nil).
	Registry prometheus.Registerer
	// AllowedOrigins are the browser origins allowed to open a WebSocket ("*" allows any).
	// Requests without an Origin header (non-browser clients) are allowed.
	AllowedOrigins []string
}

// Notifier serves /ws/tickets and /ws/tickets/:ticket_id.
type Notifier struct {
	cfg     Config
	log     *slog.Logger
	auth    *auth.Verifier
	kcfg    config.Kafka
	db      *pgxpool.Pool
	origins map[string]bool
	anyOrig bool

	m       *metrics
	hub     *hub
	admin   *kgo.Client // history reads and offset listings
	reader  *logReader
	limiter *ipLimiter
	caps    *connCaps
	tickets ticketUses
	ready   atomic.Bool
	running atomic.Bool
}

// New builds a notifier; Run must be called for it to receive events.
func New(cfg Config, deps Deps) (*Notifier, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.Verifier == nil {
		return nil, errors.New("notifier: a token verifier is required")
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	m, err := newMetrics(deps.Registry)
	if err != nil {
		return nil, fmt.Errorf("notifier metrics: %w", err)
	}
	admin, err := kafka.NewClient(deps.Kafka)
	if err != nil {
		return nil, err
	}
	n := &Notifier{
		cfg:     cfg,
		log:     deps.Log.With("service", "notifier"),
		auth:    deps.Verifier,
		kcfg:    deps.Kafka,
		db:      deps.DB,
		origins: map[string]bool{},
		m:       m,
		hub:     newHub(cfg, m),
		admin:   admin,
		reader:  newLogReader(admin, deps.Kafka.Topic),
		limiter: newIPLimiter(cfg.ConnectRate, cfg.ConnectBurst),
		caps:    newConnCaps(cfg.MaxConnsPerUser, cfg.MaxConnsPerIP),
	}
	if deps.DB != nil {
		n.tickets = &dbTicketUses{db: deps.DB}
	} else {
		n.tickets = newMemTicketUses()
	}
	for _, o := range deps.AllowedOrigins {
		if o == "*" {
			n.anyOrig = true
		}
		n.origins[o] = true
	}
	return n, nil
}

// Ready reports whether the live consumer has caught up with the log as it was when Run
// started (for /readyz). Connections are served before that too, exactly: they wait for the
// partitions they need.
func (n *Notifier) Ready() bool { return n.ready.Load() }

// Run consumes every partition of the topic from the log start until ctx ends, then closes
// every connection with 1001 (going away) so clients resume elsewhere.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return errors.New("notifier: Run called twice")
	}
	defer n.admin.Close()
	defer n.shutdown()
	cl, err := kafka.NewClient(n.kcfg,
		kgo.ConsumeTopics(n.kcfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(time.Second),
		// Transaction markers advance the hub's position like any record, so catching up
		// with an end offset that lands just past a marker completes.
		kgo.KeepControlRecords(),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	go n.watchReady(ctx)
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if fetches.IsClientClosed() {
			return errors.New("notifier: kafka client closed")
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				n.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		fetches.EachRecord(n.consume)
	}
}

func (n *Notifier) consume(rec *kgo.Record) {
	if rec.Attrs.IsControl() {
		n.hub.advance(rec.Partition, rec.Offset)
		return
	}
	n.m.consumedEvents.Inc()
	ev, err := kafka.Event(rec)
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
	n.hub.apply(&ev, it)
}

// watchReady flips Ready once the consumer reached the end offsets seen at startup.
func (n *Notifier) watchReady(ctx context.Context) {
	for ctx.Err() == nil {
		ends, err := n.reader.ends(ctx)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
				continue
			}
		}
		starts, _ := n.reader.starts(ctx)
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
		if ss, ok := s.(*session); ok {
			ss.stop(CloseGoingAway, "server shutting down: resume with your last cursor")
		}
	}
}

// catchUp waits until the live consumer has applied everything that was in partitions ps
// (all partitions when ps is nil) at the time of the call. It bounds the race between a
// client and the consumer: a ticket created or an event appended before the connect is known
// before the connect is served.
func (n *Notifier) catchUp(ctx context.Context, ps ...int32) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.CatchUpTimeout)
	defer cancel()
	ends, err := n.reader.ends(ctx)
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
			starts, err := n.reader.starts(context.Background())
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
	if n.db == nil {
		return "", 0, false, nil
	}
	err = n.db.QueryRow(ctx, `SELECT owner, last_partition FROM tickets WHERE id = $1`, id).Scan(&owner, &partition)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, err
	}
	return owner, partition, true, nil
}
