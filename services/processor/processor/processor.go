// Package processor wires the processor service: its configuration, the Kafka router
// (ports), the use cases (app), the executor and the adapters. Build is what main.go and
// `ticketflow dev` call.
package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/kafka/wmkafka"
	"github.com/ticketflow/ticketflow/libs/platform"
	"github.com/ticketflow/ticketflow/services/processor/adapters"
	"github.com/ticketflow/ticketflow/services/processor/app"
	// TICKETFLOW_CI_SANDBOX=kubernetes: CI runs as Jobs in the cluster.
	_ "github.com/ticketflow/ticketflow/services/processor/ci/kubesandbox"
	"github.com/ticketflow/ticketflow/services/processor/executor"
	"github.com/ticketflow/ticketflow/services/processor/ports"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is read from the environment.
type Config struct {
	// MaxIterations is MAX_ITERATIONS: CI attempts a ticket may use over all its runs.
	MaxIterations int `env:"MAX_ITERATIONS" envDefault:"3"`
	// Executor selects the step executors: "simulated" or "real".
	Executor string `env:"TICKETFLOW_EXECUTOR" envDefault:"simulated"`
	// SimStepDelay is how long each simulated step takes.
	SimStepDelay time.Duration `env:"TICKETFLOW_SIM_STEP_DELAY" envDefault:"500ms"`
	// SimLogsPerStep is how many log lines each simulated step writes.
	SimLogsPerStep int `env:"TICKETFLOW_SIM_LOGS_PER_STEP" envDefault:"2"`
	// SimFailCI makes every simulated CI run fail (failure injection by configuration).
	SimFailCI bool `env:"TICKETFLOW_SIM_FAIL_CI" envDefault:"false"`
	// Group is the Kafka consumer group of the processors.
	Group string `env:"TICKETFLOW_PROCESSOR_GROUP" envDefault:"processor"`
	// Concurrency bounds the runs executing at once in this process.
	Concurrency int `env:"TICKETFLOW_PROCESSOR_CONCURRENCY" envDefault:"64"`
	// Lease is how long a run stays owned by a processor that stopped renewing it; after it,
	// another processor resumes the run.
	Lease time.Duration `env:"TICKETFLOW_PROCESSOR_LEASE" envDefault:"15s"`
	// InstanceID names this processor; a restart with the same id resumes its runs at once
	// instead of waiting for their leases to expire. When set, it is also the static Kafka
	// group membership id (KIP-345), so the restarted member takes its partitions back without
	// waiting for the old session to time out. Leave it unset in a Deployment whose pods get
	// new names: a static member that scaled away would hold its partitions for the session
	// timeout. Default: the host name and process id (lease owner only), unique per process
	// so that processes sharing a host never share leases or work dirs.
	InstanceID string `env:"TICKETFLOW_INSTANCE_ID"`
	// Real configures TICKETFLOW_EXECUTOR=real (see executor.RealConfig for its variables).
	Real executor.RealConfig
}

// Build is the processor service on the shared platform: it reads Config from the
// environment.
func Build(_ context.Context, base *platform.Base) (platform.Service, error) {
	cfg, err := config.Load[Config]()
	if err != nil {
		return platform.Service{}, err
	}
	proc, err := New(cfg, Deps{Log: base.Log, DB: base.DB, Kafka: base.Config.Kafka, Registry: base.Registry,
		Secrets: ConfiguredSecrets(base.Config.Auth.JWTSecret, base.Config.Postgres.URL)})
	if err != nil {
		return platform.Service{}, err
	}
	return platform.Service{Run: proc.Run, Checks: map[string]httpx.Check{"consumer": func(context.Context) error {
		select {
		case <-proc.Running():
			return nil
		default:
			return errors.New("router not running yet")
		}
	}}}, nil
}

// Deps are what New wires the processor to.
type Deps struct {
	Log        *slog.Logger
	DB         *pgxpool.Pool
	Kafka      config.Kafka
	Subscriber message.Subscriber
	// Poison receives messages the router gave up on.
	Poison   message.Publisher
	Registry prometheus.Registerer
	// Executor overrides the configured executor (tests).
	Executor executor.Executor
	// Secrets are the shared configuration's secrets (see ConfiguredSecrets) the real
	// executor's redactor masks besides its own.
	Secrets []string
	// Hooks let tests pause the processor.
	Hooks app.Hooks
}

// Processor is the wired service.
type Processor struct {
	app      *app.Application
	router   *ports.Router
	eventLog *adapters.EventLog
	dirLock  *os.File // flock on this instance's work dir (real executor)
}

// New wires a processor.
func New(cfg Config, deps Deps) (*Processor, error) {
	if cfg.MaxIterations < 1 {
		return nil, fmt.Errorf("MAX_ITERATIONS must be at least 1, got %d", cfg.MaxIterations)
	}
	var groupOpts []kgo.Opt
	if cfg.InstanceID != "" {
		groupOpts = append(groupOpts, kgo.InstanceID(cfg.InstanceID))
	} else {
		host, _ := os.Hostname()
		cfg.InstanceID = fmt.Sprintf("processor@%s-%d", host, os.Getpid())
	}
	log := deps.Log.With("service", "processor")
	p := &Processor{}
	exec := deps.Executor
	if exec == nil {
		switch cfg.Executor {
		case "simulated":
			exec = &executor.Simulated{StepDelay: cfg.SimStepDelay, LogsPerStep: cfg.SimLogsPerStep, FailCI: cfg.SimFailCI}
		case "real":
			realCfg := cfg.Real
			realCfg.WorkDir = executor.InstanceWorkDir(realCfg.WorkDir, cfg.InstanceID)
			lock, err := executor.LockInstanceDir(realCfg.WorkDir)
			if err != nil {
				return nil, err
			}
			var artifacts executor.Artifacts
			if deps.DB != nil {
				artifacts = adapters.NewArtifacts(deps.DB)
			}
			real, err := executor.NewReal(realCfg, log, executor.RealDeps{Artifacts: artifacts, Secrets: deps.Secrets, Registry: deps.Registry})
			if err != nil {
				lock.Close()
				return nil, err
			}
			exec, p.dirLock = real, lock
		default:
			return nil, fmt.Errorf("TICKETFLOW_EXECUTOR=%q: no such executor (simulated, real)", cfg.Executor)
		}
	}
	if deps.Subscriber == nil {
		sub, err := wmkafka.NewSubscriber(wmkafka.SubscriberConfig{Brokers: deps.Kafka.Brokers, ConsumerGroup: cfg.Group, Logger: deps.Log,
			Options: append(groupOpts, kafka.BatchedFetches()...)})
		if err != nil {
			return nil, err
		}
		deps.Subscriber = sub
	}
	if deps.Poison == nil {
		pub, err := wmkafka.NewPublisher(wmkafka.PublisherConfig{Brokers: deps.Kafka.Brokers})
		if err != nil {
			return nil, err
		}
		deps.Poison = pub
	}
	var err error
	if p.eventLog, err = adapters.NewEventLog(deps.Kafka); err != nil {
		return nil, err
	}
	p.app, err = app.New(app.Config{MaxIterations: cfg.MaxIterations, Concurrency: cfg.Concurrency, Lease: cfg.Lease, InstanceID: cfg.InstanceID},
		app.Deps{Log: log, Store: adapters.NewStore(deps.DB, cfg.InstanceID), Producers: adapters.NewRunProducers(deps.Kafka),
			EventLog: p.eventLog, Executor: exec, Registry: deps.Registry, Hooks: deps.Hooks})
	if err != nil {
		return nil, err
	}
	if p.router, err = ports.NewRouter(log, p.app, deps.Kafka.Topic, deps.Subscriber, deps.Poison); err != nil {
		return nil, err
	}
	return p, nil
}

// Running is closed once the router consumes.
func (p *Processor) Running() <-chan struct{} { return p.app.Running() }

// Run consumes and drives runs until ctx ends; in-flight runs stop at their next step
// boundary (their steps are retried by the next start).
func (p *Processor) Run(ctx context.Context) error {
	defer func() {
		p.eventLog.Close()
		if p.dirLock != nil {
			p.dirLock.Close()
		}
	}()
	return p.app.Run(ctx, p.router)
}

// ConfiguredSecrets are the shared configuration's secrets the processor holds: the JWT
// secret and the database password (from DATABASE_URL, URL or key=value form).
func ConfiguredSecrets(jwtSecret, databaseURL string) []string {
	out := []string{jwtSecret}
	if cfg, err := pgconn.ParseConfig(databaseURL); err == nil && cfg.Password != "" {
		out = append(out, cfg.Password, url.QueryEscape(cfg.Password), url.PathEscape(cfg.Password))
	}
	return out
}
