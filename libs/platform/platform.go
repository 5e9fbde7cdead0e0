// Package platform is what every ticketflow process does before its own work: read the
// shared configuration, connect to PostgreSQL (migrating it) and to Kafka (creating the
// topic), and serve HTTP until a signal. Service mains stay a screen long.
package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/postgres"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
)

// Config is the configuration every service shares.
type Config struct {
	HTTP     config.HTTP
	Kafka    config.Kafka
	Postgres config.Postgres
	Auth     config.Auth
	// StartupTimeout bounds waiting for PostgreSQL and Kafka at start.
	StartupTimeout time.Duration `env:"TICKETFLOW_STARTUP_TIMEOUT" envDefault:"60s"`
	// ShutdownTimeout bounds the graceful part of a stop: in-flight requests get this long,
	// then their contexts are cancelled and the process exits whatever they do.
	ShutdownTimeout time.Duration `env:"TICKETFLOW_SHUTDOWN_TIMEOUT" envDefault:"10s"`
	// PoolStall is how long the database pool may stay full with no connection handed out
	// before /healthz fails (the process is wedged and needs a restart). Keep it above the
	// longest request deadline.
	PoolStall time.Duration `env:"TICKETFLOW_POOL_STALL" envDefault:"45s"`
	// ProfileAddr, when set, serves net/http/pprof on that private address (empty: off).
	// Keep it on loopback or a pod port that no Service exposes: profiles reveal internals.
	ProfileAddr string `env:"TICKETFLOW_PPROF_ADDR"`
}

// Base holds the shared connections of one process.
type Base struct {
	Config Config
	Log    *slog.Logger
	// DB is nil only under OptionalDatabase, when the service runs without PostgreSQL.
	DB    *pgxpool.Pool
	Kafka *kgo.Client
	// Producer is nil under WithoutProducer.
	Producer *kafka.Producer
	Registry *prometheus.Registry
	Verifier *auth.Verifier

	dbOptional bool
	ownPools   []*pgxpool.Pool // WithOwnPool's, closed with b
}

// Option changes what Open connects. Without options a service gets everything: the database
// created if missing and migrated, the topic created, and a producer.
type Option func(*options)

type options struct {
	optionalDB bool
	useDB      func() (bool, error)
	noProducer bool
}

// OptionalDatabase is for a service that works without PostgreSQL and only asks it for extras:
// when use answers true (nil: always), Open connects within optionalDBTimeout, neither creating
// nor migrating the database; when it is unreachable Open logs a warning and Base.DB stays nil.
// PostgreSQL is then no readiness condition of the service.
func OptionalDatabase(use func() (bool, error)) Option {
	return func(o *options) { o.optionalDB, o.useDB = true, use }
}

// WithoutProducer is for a service that only reads the log: Open makes no producer, does not
// create the topic and does not wait for the brokers (the service's consumer does).
func WithoutProducer() Option {
	return func(o *options) { o.noProducer = true }
}

// optionalDBTimeout bounds connecting to an optional database at start.
const optionalDBTimeout = 10 * time.Second

// Open connects everything a service needs (see Option). The database is created if missing
// and migrated.
func Open(ctx context.Context, cfg Config, log *slog.Logger, opts ...Option) (*Base, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	startCtx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	b := &Base{Config: cfg, Log: log, Registry: httpx.NewRegistry(), dbOptional: o.optionalDB}
	kafka.Instrument(b.Registry)
	if cfg.Auth.JWTSecret != "" {
		v, err := auth.NewVerifier(cfg.Auth.JWTSecret)
		if err != nil {
			return nil, err
		}
		b.Verifier = v
	}
	if o.optionalDB {
		if err := b.openOptionalDB(startCtx, o.useDB); err != nil {
			return nil, err
		}
	} else if err := b.openDB(startCtx); err != nil {
		return nil, err
	}
	cl, err := kafka.NewClient(cfg.Kafka)
	if err != nil {
		b.Close()
		return nil, err
	}
	b.Kafka = cl
	if o.noProducer {
		return b, nil
	}
	if err := kafka.WaitReady(startCtx, cl, log); err != nil {
		b.Close()
		return nil, err
	}
	if err := kafka.EnsureTopic(startCtx, cl, cfg.Kafka); err != nil {
		b.Close()
		return nil, err
	}
	b.Producer = kafka.NewProducer(cl, cfg.Kafka.Topic)
	return b, nil
}

// openDB creates the database if missing, migrates it and connects.
func (b *Base) openDB(ctx context.Context) error {
	if err := postgres.EnsureDatabase(ctx, b.Config.Postgres.URL); err != nil {
		return err
	}
	if err := postgres.Migrate(b.Config.Postgres.URL); err != nil {
		return err
	}
	db, err := postgres.Connect(ctx, b.Config.Postgres, b.Log)
	if err != nil {
		return err
	}
	b.DB = db
	b.Registry.MustRegister(postgres.NewPoolCollector(db, "main"))
	return nil
}

// openOptionalDB connects when use says so, and carries on without a database it cannot reach.
func (b *Base) openOptionalDB(ctx context.Context, use func() (bool, error)) error {
	if use != nil {
		ok, err := use()
		if err != nil || !ok {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, optionalDBTimeout)
	defer cancel()
	db, err := postgres.Connect(ctx, b.Config.Postgres, b.Log)
	if err != nil {
		b.Log.Warn("running without the database", "err", err)
		return nil
	}
	b.DB = db
	b.Registry.MustRegister(postgres.NewPoolCollector(db, "main"))
	return nil
}

// Checks are the readiness checks of the shared connections.
// An optional database is none: the service works without it.
func (b *Base) Checks() map[string]httpx.Check {
	checks := map[string]httpx.Check{
		"kafka": func(ctx context.Context) error { return b.Kafka.Ping(ctx) },
	}
	if b.DB != nil && !b.dbOptional {
		checks["postgres"] = func(ctx context.Context) error { return b.DB.Ping(ctx) }
	}
	return checks
}

// Liveness are the checks /healthz fails on (see PoolWatch).
func (b *Base) Liveness() map[string]httpx.Check {
	if b.DB == nil {
		return map[string]httpx.Check{}
	}
	w := NewPoolWatch(b.DB, b.Config.PoolStall)
	return map[string]httpx.Check{"postgres_pool": w.Check}
}

// PoolWatch tells a wedged pool from a busy one or a down database: wedged is every
// connection held while none has been handed out for longer than stall. Requests have
// deadlines, so a healthy process turns its connections over well within that; a busy one
// still hands some out; with PostgreSQL down connections are not held (acquire fails fast),
// and a restart would not help anyway (that is readiness, not liveness).
type PoolWatch struct {
	db    *pgxpool.Pool
	stall time.Duration

	mu         sync.Mutex
	acquired   int64
	lastChange time.Time
}

// NewPoolWatch watches db; stall <= 0 means 45 s.
func NewPoolWatch(db *pgxpool.Pool, stall time.Duration) *PoolWatch {
	if stall <= 0 {
		stall = 45 * time.Second
	}
	return &PoolWatch{db: db, stall: stall, lastChange: time.Now(), acquired: db.Stat().AcquireCount()}
}

// Check fails when the pool has been full with no connection handed out for stall; when
// the pool has room, a connection must answer SELECT 1 within a bound.
func (w *PoolWatch) Check(ctx context.Context) error {
	st := w.db.Stat()
	now := time.Now()
	w.mu.Lock()
	full := st.AcquiredConns() >= st.MaxConns()
	if st.AcquireCount() != w.acquired || !full {
		w.acquired, w.lastChange = st.AcquireCount(), now
	}
	stuck := now.Sub(w.lastChange)
	w.mu.Unlock()
	if full && stuck > w.stall {
		return fmt.Errorf("all %d database connections held and none handed out for %s", st.MaxConns(), stuck.Round(time.Second))
	}
	if full {
		return nil // busy: connections are turning over
	}
	ctx, cancel := context.WithTimeout(ctx, poolLivenessBound)
	defer cancel()
	conn, err := w.db.Acquire(ctx)
	if err != nil {
		// Filled up meanwhile (judged on the next probe), or the database is down: readiness
		// reports that, and a restart would not help.
		return nil
	}
	defer conn.Release()
	var one int
	if err := conn.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil && ctx.Err() != nil {
		return fmt.Errorf("SELECT 1 on a pool connection took more than %s", poolLivenessBound)
	}
	return nil
}

// poolLivenessBound bounds the SELECT 1 of the liveness check.
const poolLivenessBound = 2500 * time.Millisecond

// WithOwnPool is b with a PostgreSQL pool of its own (the same settings, traced the same
// way, its statistics labelled pool=name). `ticketflow dev` gives each service one, as
// separate processes have: otherwise the writes waiting for their event to be projected can
// hold every connection while the projector they wait for needs one. b.Close closes it.
func (b *Base) WithOwnPool(ctx context.Context, name string) (*Base, error) {
	db, err := postgres.Connect(ctx, b.Config.Postgres, b.Log)
	if err != nil {
		return nil, err
	}
	b.Registry.MustRegister(postgres.NewPoolCollector(db, name))
	b.ownPools = append(b.ownPools, db)
	c := *b
	c.DB, c.ownPools = db, nil
	return &c, nil
}

// Close releases the connections. It waits at most closeBound: pgxpool.Close waits for every
// acquired connection, and a handler that hangs holding one must not keep the process alive.
func (b *Base) Close() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if b.Kafka != nil {
			b.Kafka.Close()
		}
		if b.DB != nil {
			b.DB.Close()
		}
		for _, db := range b.ownPools {
			db.Close()
		}
	}()
	select {
	case <-done:
	case <-time.After(closeBound):
		if b.Log != nil {
			b.Log.Warn("arrêt sans attendre les connexions encore tenues par des requêtes bloquées", "attente", closeBound)
		}
	}
}

// closeBound is how long Close waits for connections still held by requests.
const closeBound = 3 * time.Second

// RequestContexts makes every request's UserContext a child of one process-wide context
// and returns its cancel: after the graceful shutdown, cancelling it tells handlers still
// running (database queries, appends, lock waits) to give up. Install it before any route.
func RequestContexts(app *fiber.App) (cancel func()) {
	ctx, cancel := context.WithCancel(context.Background())
	app.Use(func(c *fiber.Ctx) error {
		// Keep the request's span (httpx.WithObservability): work the handler starts is its child.
		c.SetUserContext(trace.ContextWithSpan(ctx, trace.SpanFromContext(c.UserContext())))
		return c.Next()
	})
	return cancel
}

// Serve runs app on addr until ctx ends, then shuts it down gracefully (10 s).
func Serve(ctx context.Context, app *fiber.App, addr string, log *slog.Logger) error {
	return ServeWithin(ctx, app, addr, log, 10*time.Second, nil)
}

// ServeWithin runs app on addr until ctx ends, then shuts it down: new connections are
// refused and in-flight requests get shutdownTimeout to finish; then afterShutdown runs
// (e.g. the cancel of RequestContexts) and ServeWithin returns even if handlers still run.
func ServeWithin(ctx context.Context, app *fiber.App, addr string, log *slog.Logger, shutdownTimeout time.Duration, afterShutdown func()) error {
	if afterShutdown != nil {
		defer afterShutdown()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (TICKETFLOW_HTTP_ADDR): %w", addr, err)
	}
	errc := make(chan error, 1)
	go func() { errc <- app.Listener(ln) }()
	log.Info("listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// ShutdownWithTimeout returns at the timeout even when handlers are still running; they
	// are abandoned (their contexts cancelled by afterShutdown) and die with the process.
	if err := app.ShutdownWithTimeout(shutdownTimeout); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
