// Package app is the processor: it consumes run requests and cancellations through a
// Watermill router, runs the eight-step workflow for each accepted run, and appends every
// step's events. Its own tables (processor_tickets, processor_runs) let a restarted
// processor resume every unfinished run, retrying the interrupted step.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/kafka/wmkafka"
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
	// timeout. Default: the host name (lease owner only).
	InstanceID string `env:"TICKETFLOW_INSTANCE_ID"`
	// Real configures TICKETFLOW_EXECUTOR=real (see RealConfig for its variables).
	Real RealConfig
}

// Deps are the adapters the processor drives.
type Deps struct {
	Log        *slog.Logger
	DB         *pgxpool.Pool
	Kafka      config.Kafka
	Producer   *kafka.Producer
	Subscriber message.Subscriber
	// Poison receives messages the router gave up on.
	Poison   message.Publisher
	Registry prometheus.Registerer
	// Executor overrides the configured executor (tests, and the real executor's wiring).
	Executor Executor
	// Secrets are the shared configuration's secrets (see ConfiguredSecrets) the real
	// executor's redactor masks besides its own.
	Secrets []string
}

// Processor runs workflows.
type Processor struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	store    *store
	producer *kafka.Producer
	exec     Executor
	actor    string
	metrics  processorMetrics

	runCtx  context.Context // lives as long as Run; drivers derive from it
	sem     chan struct{}
	mu      sync.Mutex
	local   map[string]context.CancelFunc // runs driven by this process
	wg      sync.WaitGroup
	running chan struct{}
}

type processorMetrics struct {
	runs   *prometheus.CounterVec
	active prometheus.GaugeFunc
}

// New builds a processor.
func New(cfg Config, deps Deps) (*Processor, error) {
	if cfg.MaxIterations < 1 {
		return nil, fmt.Errorf("MAX_ITERATIONS must be at least 1, got %d", cfg.MaxIterations)
	}
	var groupOpts []kgo.Opt
	if cfg.InstanceID != "" {
		groupOpts = append(groupOpts, kgo.InstanceID(cfg.InstanceID))
	} else {
		host, _ := os.Hostname()
		cfg.InstanceID = "processor@" + host
	}
	exec := deps.Executor
	if exec == nil {
		switch cfg.Executor {
		case "simulated":
			exec = &SimulatedExecutor{StepDelay: cfg.SimStepDelay, LogsPerStep: cfg.SimLogsPerStep, FailCI: cfg.SimFailCI}
		case "real":
			real, err := NewRealExecutor(cfg.Real, deps.Log.With("service", "processor"), RealDeps{DB: deps.DB, Secrets: deps.Secrets})
			if err != nil {
				return nil, err
			}
			exec = real
		default:
			return nil, fmt.Errorf("TICKETFLOW_EXECUTOR=%q: no such executor (simulated, real)", cfg.Executor)
		}
	}
	if deps.Subscriber == nil {
		sub, err := wmkafka.NewSubscriber(wmkafka.SubscriberConfig{Brokers: deps.Kafka.Brokers, ConsumerGroup: cfg.Group, Logger: deps.Log,
			Options: groupOpts})
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
	p := &Processor{cfg: cfg, deps: deps, log: deps.Log.With("service", "processor"), store: &store{db: deps.DB},
		producer: deps.Producer, exec: exec, actor: "processor", sem: make(chan struct{}, max(cfg.Concurrency, 1)),
		local: map[string]context.CancelFunc{}, running: make(chan struct{})}
	p.metrics.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ticketflow_processor_runs_finished_total", Help: "Runs finished, by terminal event."}, []string{"type"})
	p.metrics.active = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ticketflow_processor_active_runs", Help: "Runs driven by this process."}, func() float64 {
		p.mu.Lock()
		defer p.mu.Unlock()
		return float64(len(p.local))
	})
	if deps.Registry != nil {
		deps.Registry.MustRegister(p.metrics.runs, p.metrics.active)
	}
	return p, nil
}

// Running is closed once the router consumes.
func (p *Processor) Running() <-chan struct{} { return p.running }

// Run consumes and drives runs until ctx ends; in-flight runs stop at their next step
// boundary (their steps are retried by the next start).
func (p *Processor) Run(ctx context.Context) error {
	p.runCtx = ctx
	router, err := newRouter(p)
	if err != nil {
		return err
	}
	routerErr := make(chan error, 1)
	go func() { routerErr <- router.Run(ctx) }()
	go func() {
		select {
		case <-router.Running():
			close(p.running)
		case <-ctx.Done():
		}
	}()
	p.log.Info("processor started", "instance", p.cfg.InstanceID, "executor", p.exec.Name(), "max_iterations", p.cfg.MaxIterations)

	tick := time.NewTicker(p.cfg.Lease / 5)
	defer tick.Stop()
	for {
		p.superviseLeases(ctx)
		select {
		case <-ctx.Done():
			p.wg.Wait()
			_ = router.Close()
			_ = p.deps.Subscriber.Close()
			_ = p.deps.Poison.Close()
			return nil
		case err := <-routerErr:
			p.wg.Wait()
			if err != nil {
				return fmt.Errorf("processor router: %w", err)
			}
			return nil
		case <-tick.C:
		}
	}
}

// superviseLeases renews the leases of local runs and takes over runs nobody drives.
func (p *Processor) superviseLeases(ctx context.Context) {
	p.mu.Lock()
	local := make([]string, 0, len(p.local))
	for id := range p.local {
		local = append(local, id)
	}
	p.mu.Unlock()
	if len(local) > 0 {
		if err := p.store.renewLeases(ctx, p.cfg.InstanceID, p.cfg.Lease, local); err != nil && ctx.Err() == nil {
			p.log.Warn("renew leases", "err", err)
		}
	}
	claimed, err := p.store.claimRuns(ctx, p.cfg.InstanceID, p.cfg.Lease, local)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("claim runs", "err", err)
		}
		return
	}
	for _, id := range claimed {
		p.startDriver(ctx, id)
	}
}

// startDriver drives a run in the background unless this process already does.
func (p *Processor) startDriver(ctx context.Context, runID string) {
	p.mu.Lock()
	if _, ok := p.local[runID]; ok {
		p.mu.Unlock()
		return
	}
	runCtx, cancel := context.WithCancel(ctx)
	p.local[runID] = cancel
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() {
			p.mu.Lock()
			delete(p.local, runID)
			p.mu.Unlock()
			cancel()
		}()
		select {
		case p.sem <- struct{}{}:
		case <-runCtx.Done():
			return
		}
		defer func() { <-p.sem }()
		if err := p.drive(runCtx, runID); err != nil && runCtx.Err() == nil {
			p.log.Error("run interrupted; it will be resumed", "run_id", runID, "err", err)
		}
	}()
}

// watchCancel returns a context cancelled when the run's cancellation is requested (seen in
// PostgreSQL, so a request handled by another replica reaches the owner too).
func (p *Processor) watchCancel(ctx context.Context, runID string) (context.Context, func()) {
	stepCtx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stepCtx.Done():
				return
			case <-t.C:
				if p.cancelRequested(stepCtx, runID) != "" {
					cancel()
					return
				}
			}
		}
	}()
	return stepCtx, cancel
}

func (p *Processor) cancelRequested(ctx context.Context, runID string) string {
	var by string
	_ = p.deps.DB.QueryRow(ctx, `SELECT cancel_requested FROM processor_runs WHERE run_id = $1`, runID).Scan(&by)
	return by
}
