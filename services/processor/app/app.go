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
	// timeout. Default: the host name and process id (lease owner only), unique per process
	// so that processes sharing a host never share leases or work dirs.
	InstanceID string `env:"TICKETFLOW_INSTANCE_ID"`
	// Real configures TICKETFLOW_EXECUTOR=real (see RealConfig for its variables).
	Real RealConfig
}

// Deps are the adapters the processor drives.
type Deps struct {
	Log   *slog.Logger
	DB    *pgxpool.Pool
	Kafka config.Kafka
	// Producer is not used: each run appends through its own transactional producer (see
	// runTransactionalID). Kept so existing wiring compiles.
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
	cfg     Config
	deps    Deps
	log     *slog.Logger
	store   *store
	scan    *kgo.Client // reads the log back (ScanPartition) when a resumed run needs it
	exec    Executor
	actor   string
	metrics processorMetrics
	hooks   testHooks
	dirLock *os.File // flock on this instance's work dir (real executor)

	runCtx context.Context // lives as long as Run; drivers derive from it
	sem    chan struct{}
	mu     sync.Mutex
	local  map[string]context.CancelFunc // runs driven by this process
	// ticketLocks: one driver per ticket at a time in this process (see lockTicket).
	ticketLocks map[string]*ticketLock
	wg          sync.WaitGroup
	running     chan struct{}
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
		cfg.InstanceID = fmt.Sprintf("processor@%s-%d", host, os.Getpid())
	}
	var dirLock *os.File
	exec := deps.Executor
	if exec == nil {
		switch cfg.Executor {
		case "simulated":
			exec = &SimulatedExecutor{StepDelay: cfg.SimStepDelay, LogsPerStep: cfg.SimLogsPerStep, FailCI: cfg.SimFailCI}
		case "real":
			realCfg := cfg.Real
			realCfg.WorkDir = instanceWorkDir(realCfg.WorkDir, cfg.InstanceID)
			lock, err := lockInstanceDir(realCfg.WorkDir)
			if err != nil {
				return nil, err
			}
			real, err := NewRealExecutor(realCfg, deps.Log.With("service", "processor"), RealDeps{DB: deps.DB, Secrets: deps.Secrets})
			if err != nil {
				lock.Close()
				return nil, err
			}
			exec, dirLock = real, lock
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
	scan, err := kafka.NewClient(deps.Kafka)
	if err != nil {
		return nil, err
	}
	p := &Processor{cfg: cfg, deps: deps, log: deps.Log.With("service", "processor"), store: &store{db: deps.DB, owner: cfg.InstanceID},
		scan: scan, exec: exec, actor: "processor", sem: make(chan struct{}, max(cfg.Concurrency, 1)), dirLock: dirLock,
		local: map[string]context.CancelFunc{}, ticketLocks: map[string]*ticketLock{}, running: make(chan struct{})}
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
	defer p.closeClients()
	for {
		p.superviseLeases(ctx)
		select {
		case <-ctx.Done():
			p.wg.Wait()
			_ = router.Close()
			_ = p.deps.Subscriber.Close()
			_ = p.deps.Poison.Close()
			// Every driver has stopped: hand this processor's runs to the others now rather
			// than after their leases.
			if !p.hooks.skipRelease {
				releaseCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := p.store.release(releaseCtx); err != nil {
					p.log.Warn("release leases on shutdown", "err", err)
				}
			}
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

func (p *Processor) closeClients() {
	p.scan.Close()
	if p.dirLock != nil {
		p.dirLock.Close()
	}
}

// superviseLeases renews the leases of local runs, stops the drivers of runs taken over
// meanwhile, and takes over runs nobody drives (up to this processor's share).
func (p *Processor) superviseLeases(ctx context.Context) {
	if h := p.hooks.beforeSupervise; h != nil {
		h()
	}
	if err := p.store.heartbeat(ctx, p.cfg.Lease); err != nil && ctx.Err() == nil {
		p.log.Warn("heartbeat", "err", err)
	}
	p.mu.Lock()
	local := make([]string, 0, len(p.local))
	for id := range p.local {
		local = append(local, id)
	}
	p.mu.Unlock()
	if len(local) > 0 {
		kept, err := p.store.renewLeases(ctx, p.cfg.Lease, local)
		if err != nil && ctx.Err() == nil {
			p.log.Warn("renew leases", "err", err)
		}
		if err == nil {
			p.stopLost(local, kept)
		}
	}
	claimed, err := p.store.claimRuns(ctx, p.cfg.Lease, local)
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

// stopLost cancels the drivers of runs another processor took over while this one was not
// renewing (paused or stalled): their work dirs are this instance's, but their steps, child
// processes and LLM calls are wasted work for a run they can no longer append to.
func (p *Processor) stopLost(local, kept []string) {
	still := make(map[string]bool, len(kept))
	for _, id := range kept {
		still[id] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range local {
		if cancel, ok := p.local[id]; ok && !still[id] {
			p.log.Warn("run taken over by another processor: stopping its driver here", "run_id", id)
			cancel()
		}
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
		err := p.drive(runCtx, runID)
		switch {
		case err == nil, runCtx.Err() != nil:
		case lostRun(err):
			p.log.Warn("run taken over by another processor: this one stops driving it", "run_id", runID, "err", err)
		default:
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
