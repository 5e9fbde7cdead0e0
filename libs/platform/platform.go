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
)

// Config is the configuration every service shares.
type Config struct {
	HTTP     config.HTTP
	Kafka    config.Kafka
	Postgres config.Postgres
	Auth     config.Auth
	// StartupTimeout bounds waiting for PostgreSQL and Kafka at start.
	StartupTimeout time.Duration `env:"TICKETFLOW_STARTUP_TIMEOUT" envDefault:"60s"`
}

// Base holds the shared connections of one process.
type Base struct {
	Config   Config
	Log      *slog.Logger
	DB       *pgxpool.Pool
	Kafka    *kgo.Client
	Producer *kafka.Producer
	Registry *prometheus.Registry
	Verifier *auth.Verifier
}

// Open connects everything a service needs. The database is created if missing and migrated.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Base, error) {
	startCtx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	b := &Base{Config: cfg, Log: log, Registry: httpx.NewRegistry()}
	if cfg.Auth.JWTSecret != "" {
		v, err := auth.NewVerifier(cfg.Auth.JWTSecret)
		if err != nil {
			return nil, err
		}
		b.Verifier = v
	}
	if err := postgres.EnsureDatabase(startCtx, cfg.Postgres.URL); err != nil {
		return nil, err
	}
	if err := postgres.Migrate(cfg.Postgres.URL); err != nil {
		return nil, err
	}
	db, err := postgres.Connect(startCtx, cfg.Postgres, log)
	if err != nil {
		return nil, err
	}
	b.DB = db
	cl, err := kafka.NewClient(cfg.Kafka)
	if err != nil {
		b.Close()
		return nil, err
	}
	b.Kafka = cl
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

// Checks are the readiness checks of the shared connections.
func (b *Base) Checks() map[string]httpx.Check {
	return map[string]httpx.Check{
		"postgres": func(ctx context.Context) error { return b.DB.Ping(ctx) },
		"kafka":    func(ctx context.Context) error { return b.Kafka.Ping(ctx) },
	}
}

// Close releases the connections.
func (b *Base) Close() {
	if b.Kafka != nil {
		b.Kafka.Close()
	}
	if b.DB != nil {
		b.DB.Close()
	}
}

// Serve runs app on addr until ctx ends, then shuts it down gracefully.
func Serve(ctx context.Context, app *fiber.App, addr string, log *slog.Logger) error {
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
	if err := app.ShutdownWithTimeout(10 * time.Second); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
