// Package app is the processor's use cases: it accepts run requests, cancellations and
// review comments (called by ports), and drives every accepted run through the workflow
// graph (engine.go), appending every step's events. Its own tables, reached through Store,
// let a restarted processor resume every unfinished run, retrying the interrupted step;
// leases (runs.go) spread the runs over the live processors.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/services/processor/executor"
	"go.opentelemetry.io/otel/trace"
)

// Config is what the use cases need of the processor's configuration.
type Config struct {
	// MaxIterations: CI attempts a ticket may use over all its runs.
	MaxIterations int
	// Concurrency bounds the runs executing at once in this process.
	Concurrency int
	// Lease is how long a run stays owned by a processor that stopped renewing it.
	Lease time.Duration
	// InstanceID names this processor: the owner of its leases.
	InstanceID string
}

// Store is the processor's own state (processor_tickets, processor_runs, processor_feedback,
// processor_instances). Every write a run's driver makes is conditioned on still owning the
// run and fails with ErrLeaseLost otherwise.
type Store interface {
	SaveTicket(ctx context.Context, id string, d *events.TicketCreatedData) error
	AddFeedback(ctx context.Context, ticketID, eventID string, seq int64, comment string) error
	Ticket(ctx context.Context, id string) (executor.Ticket, int, error)
	AcceptRun(ctx context.Context, ev events.Event, lease time.Duration, mayWait bool,
		rejection func(reason, activeRunID string) (events.Envelope, error)) (AcceptOutcome, error)
	Run(ctx context.Context, runID string) (RunRow, error)
	ClaimRuns(ctx context.Context, lease time.Duration, exclude []string) ([]string, error)
	RenewLeases(ctx context.Context, lease time.Duration, runIDs []string) ([]string, error)
	// Surplus is how many runs this processor holds beyond its fair share that others have
	// room for; HandOver releases one at a step boundary for them to claim.
	Surplus(ctx context.Context, lease time.Duration) (int, error)
	HandOver(ctx context.Context, runID, nextStep string, iteration int, state executor.RunState) error
	Heartbeat(ctx context.Context, lease time.Duration) error
	Release(ctx context.Context) error
	StartStep(ctx context.Context, runID, step string, attempt, iteration int, state executor.RunState) error
	SaveState(ctx context.Context, runID string, state executor.RunState) error
	UseIteration(ctx context.Context, runID, ticketID string, iteration int) error
	RequestCancel(ctx context.Context, runID, by string) (bool, error)
	// CancelRequested is who asked to cancel the run ("" for nobody).
	CancelRequested(ctx context.Context, runID string) string
	BeginTerminal(ctx context.Context, runID string, env events.Envelope) error
	FinishTerminal(ctx context.Context, runID, ticketID string) error
	EarlierRuns(ctx context.Context, ticketID, runID string) ([]executor.RunState, error)
}

// Producers open each run's own transactional producer: opening one fences, at the broker,
// every earlier producer of the same run.
type Producers interface {
	Open(ctx context.Context, runID string) (Producer, error)
}

// Producer appends a run's events, each call one Kafka transaction.
type Producer interface {
	Append(ctx context.Context, envs ...events.Envelope) ([]events.Position, error)
	Close()
}

// Log reads the event log back.
type Log interface {
	// HasEvent scans a partition from an offset to its end for an event that matches.
	HasEvent(ctx context.Context, partition int32, from int64, match func(events.Envelope) bool) (bool, error)
}

// Intake is what delivers the processor's events (ports' Kafka router).
type Intake interface {
	Run(ctx context.Context) error
	// Running is closed once the intake consumes.
	Running() <-chan struct{}
	Close() error
}

// Deps are what the application drives.
type Deps struct {
	Log       *slog.Logger
	Store     Store
	Producers Producers
	EventLog  Log
	Executor  executor.Executor
	Registry  prometheus.Registerer
	Hooks     Hooks // tests only

}

// Hooks let tests pause a processor the way SIGSTOP would.
type Hooks struct {
	// BeforeAppend runs before each append of a run's events; blocking in it holds the
	// driver just before it writes.
	BeforeAppend func(runID string, envs []events.Envelope)
	// AfterAppend sees each append's result.
	AfterAppend func(runID string, err error)
	// BeforeSupervise runs before each lease renewal and claim round.
	BeforeSupervise func()
	// SkipRelease makes a shutdown behave like a crash: the leases are left to expire.
	SkipRelease bool
}

// Application runs workflows.
type Application struct {
	cfg       Config
	log       *slog.Logger
	store     Store
	producers Producers
	eventLog  Log
	exec      executor.Executor
	actor     string
	metrics   processorMetrics
	hooks     Hooks

	runCtx context.Context // lives as long as Run; drivers derive from it
	sem    chan struct{}
	mu     sync.Mutex
	local  map[string]context.CancelFunc // runs driven by this process
	// handOver: local runs to give up at their next step boundary (this processor holds
	// more than its share and others have room; see superviseLeases).
	handOver map[string]bool
	// ticketLocks: one driver per ticket at a time in this process (see lockTicket).
	ticketLocks map[string]*ticketLock
	wg          sync.WaitGroup
	running     chan struct{}
}

type processorMetrics struct {
	runs   *prometheus.CounterVec
	active prometheus.GaugeFunc
	// Durations, with a span's trace id as exemplar: a run by terminal event type (from the
	// moment this processor took it on), a step by name and outcome, a CI process by result.
	runDuration  *prometheus.HistogramVec
	stepDuration *prometheus.HistogramVec
	ciDuration   *prometheus.HistogramVec
}

// New builds the application.
func New(cfg Config, deps Deps) (*Application, error) {
	if cfg.MaxIterations < 1 {
		return nil, fmt.Errorf("MAX_ITERATIONS must be at least 1, got %d", cfg.MaxIterations)
	}
	a := &Application{cfg: cfg, log: deps.Log, store: deps.Store, producers: deps.Producers, eventLog: deps.EventLog,
		exec: deps.Executor, actor: "processor", hooks: deps.Hooks, sem: make(chan struct{}, max(cfg.Concurrency, 1)),
		local: map[string]context.CancelFunc{}, handOver: map[string]bool{}, ticketLocks: map[string]*ticketLock{}, running: make(chan struct{})}
	a.metrics.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ticketflow_processor_runs_finished_total", Help: "Runs finished, by terminal event."}, []string{"type"})
	a.metrics.active = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ticketflow_processor_active_runs", Help: "Runs driven by this process."}, func() float64 {
		return float64(a.Driving())
	})
	a.metrics.runDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ticketflow_run_duration_seconds",
		Help:    "Time from a processor taking a run on to its terminal event, by outcome (the terminal event type).",
		Buckets: prometheus.ExponentialBuckets(0.5, 2, 14)}, []string{"outcome"})
	a.metrics.stepDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ticketflow_step_duration_seconds",
		Help:    "Time a workflow step's work took, by step and outcome (ok, failed).",
		Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 14)}, []string{"step", "outcome"})
	a.metrics.ciDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ticketflow_ci_duration_seconds",
		Help:    "Time a run's CI command took, by outcome (passed, failed).",
		Buckets: prometheus.ExponentialBuckets(0.1, 2, 14)}, []string{"outcome"})
	if deps.Registry != nil {
		deps.Registry.MustRegister(a.metrics.runs, a.metrics.active, a.metrics.runDuration, a.metrics.stepDuration, a.metrics.ciDuration)
	}
	return a, nil
}

// Running is closed once the intake consumes.
func (a *Application) Running() <-chan struct{} { return a.running }

// Driving is how many runs this process drives now.
func (a *Application) Driving() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.local)
}

// Run consumes from the intake and drives runs until ctx ends; in-flight runs stop at their
// next step boundary (their steps are retried by the next start).
func (a *Application) Run(ctx context.Context, in Intake) error {
	a.runCtx = ctx
	inErr := make(chan error, 1)
	go func() { inErr <- in.Run(ctx) }()
	go func() {
		select {
		case <-in.Running():
			close(a.running)
		case <-ctx.Done():
		}
	}()
	a.log.Info("processor started", "instance", a.cfg.InstanceID, "executor", a.exec.Name(), "max_iterations", a.cfg.MaxIterations)

	tick := time.NewTicker(a.cfg.Lease / 5)
	defer tick.Stop()
	for {
		a.superviseLeases(ctx)
		select {
		case <-ctx.Done():
			a.wg.Wait()
			_ = in.Close()
			// Every driver has stopped: hand this processor's runs to the others now rather
			// than after their leases.
			if !a.hooks.SkipRelease {
				releaseCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := a.store.Release(releaseCtx); err != nil {
					a.log.Warn("release leases on shutdown", "err", err)
				}
			}
			return nil
		case err := <-inErr:
			a.wg.Wait()
			if err != nil {
				return fmt.Errorf("processor router: %w", err)
			}
			return nil
		case <-tick.C:
		}
	}
}

// SaveTicket records what a TicketCreated says of the ticket.
func (a *Application) SaveTicket(ctx context.Context, ticketID string, d *events.TicketCreatedData) error {
	return a.store.SaveTicket(ctx, ticketID, d)
}

// AddFeedback stores a review comment (ChangesRequested) once per event; seq (the event's
// offset) orders a ticket's comments for the next run's conversation.
func (a *Application) AddFeedback(ctx context.Context, ticketID, eventID string, seq int64, comment string) error {
	return a.store.AddFeedback(ctx, ticketID, eventID, seq, comment)
}

// RequestCancel marks the run for cancellation; its driver (here or on another processor)
// sees it within a moment and ends the run with RunCancelled.
func (a *Application) RequestCancel(ctx context.Context, runID, by string) error {
	ok, err := a.store.RequestCancel(ctx, runID, by)
	if err == nil && ok {
		a.log.Info("cancel requested", "run_id", runID, "by", by)
	}
	return err
}

// RequestRun accepts or rejects a run request (ev is its ProcessingRequested), then drives
// the run (a rejected run is driven straight to appending its stored RunRejected).
func (a *Application) RequestRun(ctx context.Context, ev events.Event) error {
	if ev.RunID == "" {
		return nil
	}
	rejection := func(reason, active string) (events.Envelope, error) {
		return events.New(ev.TicketID, ev.RunID, a.actor, &events.RunRejectedData{Reason: reason, ActiveRunID: active})
	}
	deadline := time.Now().Add(activeRunSettleTimeout)
	for {
		out, err := a.store.AcceptRun(ctx, ev, a.cfg.Lease, time.Now().Before(deadline), rejection)
		if err != nil {
			return err
		}
		if out.Drive {
			// The run continues the trace of its request (the record's span in ctx); a run
			// resumed or claimed later by lease starts a trace of its own.
			a.startDriver(trace.ContextWithSpan(a.runCtx, trace.SpanFromContext(ctx)), ev.RunID)
		}
		if !out.Wait {
			return nil // driven here, or stored for a less loaded processor to claim
		}
		// The active run is appending its terminal event: the request most likely follows
		// it, so wait (up to the deadline, then reject) for the ticket to be free.
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// activeRunSettleTimeout bounds how long a request waits for the ticket's previous run to
// confirm its terminal event.
const activeRunSettleTimeout = 10 * time.Second

// ErrLeaseLost: the run is owned by another processor now; its driver here must stop.
var ErrLeaseLost = errors.New("run taken over by another processor")

// Run statuses in processor_runs.
const (
	RunActive      = "active"
	RunTerminating = "terminating"
	RunTerminal    = "terminal"
)

// AcceptOutcome is what Store.AcceptRun decided about a run request.
type AcceptOutcome struct {
	// Drive: this processor owns the run (accepted now, or earlier and its lease is ours or
	// expired, or rejected with its RunRejected stored as the pending terminal event);
	// driving it appends what is still missing. A run accepted beyond this processor's share
	// of the work is stored unowned instead, for a less loaded processor to claim.
	Drive bool
	// Wait: the ticket's active run has stored its terminal event but not yet confirmed it;
	// ask again in a moment instead of rejecting a request that arrived after the run ended.
	// Only when mayWait; otherwise the request is rejected.
	Wait bool
	// ActiveRunID is the run that made the request wait or be rejected.
	ActiveRunID string
}

// RunRow is a run as processor_runs holds it.
type RunRow struct {
	RunID           string
	TicketID        string
	Partition       int32
	RequestOffset   int64
	Status          string
	Step            string
	Attempt         int
	Iteration       int
	State           executor.RunState
	CancelRequested string
	PendingEvent    []byte
	Owner           string
	PreviousOwner   string
}
