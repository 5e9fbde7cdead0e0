// Command notifier runs the WebSocket notifier on its own: configuration from the
// environment, /healthz, /readyz and /metrics beside /ws/tickets[/:ticket_id].
// `ticketflow dev` mounts the same app.Notifier in its single process instead.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/logging"
	"github.com/ticketflow/ticketflow/libs/postgres"
	"github.com/ticketflow/ticketflow/services/notifier/app"
)

type settings struct {
	Notifier app.Config
	Kafka    config.Kafka
	HTTP     config.HTTP
	Auth     config.Auth
	Postgres config.Postgres
	// UseDB lets the notifier ask the tickets projection for owners of tickets whose
	// TicketCreated left the log (retention). Off: such tickets answer 4404.
	UseDB bool `env:"TICKETFLOW_NOTIFIER_USE_DB" envDefault:"true"`
}

func main() {
	log := logging.Setup()
	if err := run(log); err != nil {
		log.Error("notifier stopped", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	cfg, err := config.Load[settings]()
	if err != nil {
		return err
	}
	if len(cfg.Kafka.Brokers) == 0 {
		return errors.New("KAFKA_BROKERS is required")
	}
	verifier, err := auth.NewVerifier(cfg.Auth.JWTSecret)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var db *pgxpool.Pool
	if cfg.UseDB {
		dbCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		db, err = postgres.Connect(dbCtx, cfg.Postgres, log)
		cancel()
		if err != nil {
			log.Warn("running without the database: owners of tickets older than the log are unknown, WebSocket tickets are single-use per replica only", "err", err)
			db = nil
		} else {
			defer db.Close()
		}
	}

	reg := httpx.NewRegistry()
	n, err := app.New(cfg.Notifier, app.Deps{
		Log: log, Verifier: verifier, Kafka: cfg.Kafka, DB: db, Registry: reg, AllowedOrigins: cfg.HTTP.AllowedOrigins,
	})
	if err != nil {
		return err
	}
	srv := httpx.NewApp(log, nil, httpx.WithTrustedProxies(cfg.HTTP.TrustedProxies)) // the WebSocket origin check is the notifier's own
	httpx.MountOps(srv, reg, map[string]httpx.Check{"notifier": func(context.Context) error {
		if !n.Ready() {
			return errors.New("catching up with the event log")
		}
		return nil
	}})
	n.Mount(srv)

	runErr := make(chan error, 1)
	go func() { runErr <- n.Run(ctx) }()
	listenErr := make(chan error, 1)
	go func() { listenErr <- srv.Listen(cfg.HTTP.Addr) }()
	log.Info("notifier listening", "addr", cfg.HTTP.Addr, "topic", cfg.Kafka.Topic)

	select {
	case <-ctx.Done():
	case err = <-runErr:
		if err != nil {
			err = fmt.Errorf("consumer: %w", err)
		}
	case err = <-listenErr:
		err = fmt.Errorf("listen %s: %w", cfg.HTTP.Addr, err)
	}
	stop()
	_ = srv.ShutdownWithTimeout(5 * time.Second)
	return err
}
