// Package notifier wires the WebSocket notifier: the application (app: hub, histories,
// sessions, replay) between its transport (ports: the /ws/tickets routes) and what it reads
// (adapters: the event topic, the tickets projection). Build is its one constructor, used by
// services/notifier/main.go and by `ticketflow dev`.
package notifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/platform"
	"github.com/ticketflow/ticketflow/services/notifier/adapters"
	"github.com/ticketflow/ticketflow/services/notifier/app"
	"github.com/ticketflow/ticketflow/services/notifier/ports"
)

// Platform is what the notifier asks of the shared process (platform.Main): no producer (it
// only reads the log), and the database only when TICKETFLOW_NOTIFIER_USE_DB and reachable.
var Platform = []platform.Option{platform.WithoutProducer(), platform.OptionalDatabase(useDB)}

func useDB() (bool, error) {
	cfg, err := config.Load[Config]()
	return cfg.UseDB, err
}

// Build loads the notifier's Config and wires it to base: its routes, its consumer (Run) and
// its readiness (caught up with the log).
func Build(_ context.Context, base *platform.Base) (platform.Service, error) {
	cfg, err := config.Load[Config]()
	if err != nil {
		return platform.Service{}, err
	}
	verifier := base.Verifier
	if verifier == nil {
		// No secret: the same refusal a service that needs one gets.
		if verifier, err = auth.NewVerifier(base.Config.Auth.JWTSecret); err != nil {
			return platform.Service{}, err
		}
	}
	db := base.DB
	if !cfg.UseDB {
		db = nil
	} else if db == nil {
		base.Log.Warn("running without the database: owners of tickets older than the log are unknown, WebSocket tickets are single-use per replica only")
	}
	n, err := New(cfg.Config, Deps{Log: base.Log, Verifier: verifier, Kafka: base.Config.Kafka, DB: db,
		Registry: base.Registry, AllowedOrigins: base.Config.HTTP.AllowedOrigins})
	if err != nil {
		return platform.Service{}, err
	}
	return platform.Service{
		Mount: n.Mount,
		Run:   n.Run,
		Checks: map[string]httpx.Check{"notifier": func(context.Context) error {
			if !n.Ready() {
				return errors.New("catching up with the event log")
			}
			return nil
		}},
	}, nil
}

// Deps are what New wires the notifier to.
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
	AllowedOrigins []string
}

// Notifier is the wired notifier: Mount its routes, Run its consumer.
type Notifier struct {
	app    *app.Notifier
	server *ports.Server
	log    *adapters.LogReader
}

// New wires a notifier from cfg (Build is New with the configuration and connections of the
// process; tests and the bench call New).
func New(cfg app.Config, deps Deps) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
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
	m, err := app.NewMetrics(deps.Registry)
	if err != nil {
		return nil, fmt.Errorf("notifier metrics: %w", err)
	}
	reader, err := adapters.NewLogReader(deps.Kafka, deps.Log)
	if err != nil {
		return nil, err
	}
	ad := app.Deps{Log: deps.Log, EventLog: reader, Metrics: m}
	var tickets ports.TicketUses = adapters.NewMemTicketUses()
	if deps.DB != nil {
		ad.Owners = adapters.NewOwners(deps.DB)
		tickets = adapters.NewDBTicketUses(deps.DB)
	}
	a, err := app.New(cfg, ad)
	if err != nil {
		reader.Close()
		return nil, err
	}
	server := ports.NewServer(cfg, ports.Deps{Verifier: deps.Verifier, App: a, Metrics: m,
		Tickets: tickets, AllowedOrigins: deps.AllowedOrigins})
	return &Notifier{app: a, server: server, log: reader}, nil
}

// Mount registers GET /ws/tickets and GET /ws/tickets/:ticket_id on web.
func (n *Notifier) Mount(web *fiber.App) { n.server.Mount(web) }

// Run consumes the event topic until ctx ends, then closes every connection with 1001.
func (n *Notifier) Run(ctx context.Context) error {
	defer n.log.Close()
	return n.app.Run(ctx)
}

// Ready reports whether the notifier has caught up with the log as it was at Run's start.
func (n *Notifier) Ready() bool { return n.app.Ready() }
