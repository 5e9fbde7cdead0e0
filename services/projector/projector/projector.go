// Package projector wires the projector service: the Kafka consumer (ports) feeding the
// application (app) that folds the event log into PostgreSQL through adapters. Build is the
// constructor main.go and `ticketflow dev` use; New is the same without platform.Base.
package projector

import (
	"context"
	"errors"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/platform"
	"github.com/ticketflow/ticketflow/services/projector/adapters"
	"github.com/ticketflow/ticketflow/services/projector/app"
	"github.com/ticketflow/ticketflow/services/projector/ports"
)

// Config is read from the environment.
type Config struct {
	// Group is the Kafka consumer group; projector replicas share partitions through it.
	Group string `env:"TICKETFLOW_PROJECTOR_GROUP" envDefault:"projector"`
	// ResetOnTopicChange rebuilds from the new topic when the topic was deleted and recreated
	// (new topic id). Off by default: a recreated topic stops the projector with an error,
	// because silently skipping or re-reading is a decision for a person.
	ResetOnTopicChange bool `env:"TICKETFLOW_PROJECTOR_RESET_ON_TOPIC_CHANGE" envDefault:"false"`
	// InstanceID is this member's static group membership id (KIP-345): a projector that
	// restarts with the same id takes its partitions back at once instead of waiting for the
	// dead member's session to time out. Unset: dynamic membership (right for Deployments,
	// whose pods get new names).
	InstanceID string `env:"TICKETFLOW_INSTANCE_ID"`
}

// Deps are what the projector runs on.
type Deps struct {
	Log      *slog.Logger
	DB       *pgxpool.Pool
	Kafka    config.Kafka
	Registry prometheus.Registerer
}

// ErrTopicRecreated stops the projector when the topic's id differs from the one its stored
// offsets belong to (see Config.ResetOnTopicChange).
var ErrTopicRecreated = app.ErrTopicRecreated

// Projector consumes the topic and maintains the tables.
type Projector struct {
	consumer *ports.Consumer
}

// New builds a projector; Run starts it.
func New(cfg Config, deps Deps) *Projector {
	log := deps.Log.With("service", "projector")
	application := app.New(adapters.NewStore(deps.DB, deps.Kafka.Topic), log, deps.Registry)
	return &Projector{consumer: ports.NewConsumer(ports.ConsumerConfig{
		Kafka: deps.Kafka, Group: cfg.Group, InstanceID: cfg.InstanceID, ResetOnTopicChange: cfg.ResetOnTopicChange,
	}, application, log)}
}

// Run consumes until ctx ends.
func (p *Projector) Run(ctx context.Context) error { return p.consumer.Run(ctx) }

// Ready reports whether the projector has joined its group and is consuming.
func (p *Projector) Ready() bool { return p.consumer.Ready() }

// Build is the projector service on the process's shared connections: its Config from the
// environment, the consumer as Run and its readiness as the "consumer" check.
func Build(_ context.Context, base *platform.Base) (platform.Service, error) {
	cfg, err := config.Load[Config]()
	if err != nil {
		return platform.Service{}, err
	}
	p := New(cfg, Deps{Log: base.Log, DB: base.DB, Kafka: base.Config.Kafka, Registry: base.Registry})
	return platform.Service{Run: p.Run, Checks: map[string]httpx.Check{"consumer": func(context.Context) error {
		if !p.Ready() {
			return errors.New("not yet assigned partitions")
		}
		return nil
	}}}, nil
}
