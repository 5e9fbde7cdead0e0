package processor

// Several processors in one test process, sharing one broker (kfake over TCP) and one
// PostgreSQL database: redelivery, zombie fencing and work spreading.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/kafka/kafkatest"
	"github.com/ticketflow/ticketflow/libs/kafka/wmkafka"
	"github.com/ticketflow/ticketflow/libs/postgres"
	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
	"github.com/ticketflow/ticketflow/services/processor/app"
	"github.com/ticketflow/ticketflow/services/processor/executor"
	"github.com/twmb/franz-go/pkg/kgo"
)

type cluster struct {
	t    *testing.T
	kcfg config.Kafka
	cl   *kgo.Client
	prod *kafka.Producer
	db   *pgxpool.Pool
	log  *slog.Logger
}

func newCluster(t *testing.T, partitions int32) *cluster {
	t.Helper()
	b := kafkatest.Start(t, partitions)
	c := &cluster{t: t, kcfg: b.Config, cl: b.Client, prod: b.Producer}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	c.log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if c.db, err = postgres.Connect(ctx, config.Postgres{URL: pgtest.NewDatabase(t), MaxConns: 24}, c.log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.db.Close)
	return c
}

func (c *cluster) append(envs ...events.Envelope) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.prod.Append(ctx, envs...); err != nil {
		c.t.Fatal(err)
	}
}

// events returns every committed event of the topic, partition by partition.
func (c *cluster) events() []events.Event {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []events.Event
	for p := int32(0); p < c.kcfg.Partitions; p++ {
		err := kafka.ScanPartition(ctx, c.cl, c.kcfg.Topic, p, 0, kafka.ScanToEnd, func(rec *kgo.Record) (bool, error) {
			if ev, err := kafka.Event(rec); err == nil {
				out = append(out, ev)
			}
			return true, nil
		})
		if err != nil {
			c.t.Fatal(err)
		}
	}
	return out
}

func (c *cluster) runEvents(runID string) []events.Event { return runOnly(c.events(), runID) }

// waitRun polls the log until cond holds for the run's events.
func (c *cluster) waitRun(runID string, timeout time.Duration, what string, cond func([]events.Event) bool) []events.Event {
	c.t.Helper()
	return poll(c.t, timeout, what, func() []events.Event { return c.runEvents(runID) }, cond)
}

func terminals(evs []events.Event) int {
	n := 0
	for _, ev := range evs {
		if events.Terminal(ev.Type) {
			n++
		}
	}
	return n
}

type procHandle struct {
	p      *Processor
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs a processor with the simulated executor (exec overrides it when non-nil).
func (c *cluster) start(id string, lease time.Duration, exec executor.Executor, hooks app.Hooks) *procHandle {
	c.t.Helper()
	if exec == nil {
		exec = &executor.Simulated{StepDelay: 100 * time.Millisecond, LogsPerStep: 1}
	}
	cfg := Config{MaxIterations: 3, Group: "processor", Concurrency: 64, Lease: lease, InstanceID: id}
	// A dynamic group member: a static one (what New makes of an InstanceID) that stops
	// holds the group's next rebalance for the whole session timeout.
	sub, err := wmkafka.NewSubscriber(wmkafka.SubscriberConfig{Brokers: c.kcfg.Brokers, ConsumerGroup: cfg.Group, Logger: c.log})
	if err != nil {
		c.t.Fatal(err)
	}
	p, err := New(cfg, Deps{Log: c.log, DB: c.db, Kafka: c.kcfg, Executor: exec, Subscriber: sub, Hooks: hooks})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &procHandle{p: p, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(h.done); _ = p.Run(ctx) }()
	c.t.Cleanup(h.stop)
	select {
	case <-p.Running():
	case <-time.After(30 * time.Second):
		c.t.Fatalf("processor %s not consuming", id)
	}
	return h
}

func (h *procHandle) stop() {
	h.cancel()
	<-h.done
}

func (h *procHandle) driving() int {
	return h.p.app.Driving()
}

// feedbackRecorder is the simulated executor, recording the review comments each run loads.
type feedbackRecorder struct {
	executor.Simulated
	mu   sync.Mutex
	seen map[string][]string
}

func (f *feedbackRecorder) LoadConversation(ctx context.Context, run *executor.Run) error {
	f.mu.Lock()
	f.seen[run.ID] = append([]string(nil), run.Ticket.Feedback...)
	f.mu.Unlock()
	return f.Simulated.LoadConversation(ctx, run)
}

// The same ChangesRequested delivered three times (at-least-once delivery, or a retried
// append of the same event) puts its comment once in the next run's conversation.
func TestRedeliveredChangesRequestedCountsOnce(t *testing.T) {
	c := newCluster(t, 2)
	rec := &feedbackRecorder{Simulated: executor.Simulated{StepDelay: 20 * time.Millisecond, LogsPerStep: 1}, seen: map[string][]string{}}
	c.start("feedback-"+uuid.NewString()[:6], 5*time.Second, rec, app.Hooks{})

	ticket, run1, run2 := uuid.NewString(), uuid.NewString(), uuid.NewString()
	c.append(events.MustNew(ticket, "", "user:alice", &events.TicketCreatedData{Title: "t", Owner: "alice"}),
		events.MustNew(ticket, run1, "user:alice", &events.ProcessingRequestedData{RequestedBy: "alice", Reason: "start"}))
	c.waitRun(run1, 30*time.Second, "run 1 to end", func(evs []events.Event) bool { return terminals(evs) > 0 })

	changes := events.MustNew(ticket, run1, "user:alice", &events.ChangesRequestedData{RequestedBy: "alice", Comment: "rename the greeting", NextRunID: run2})
	c.append(changes)
	c.append(changes)
	c.append(changes, events.MustNew(ticket, run2, "user:alice", &events.ProcessingRequestedData{RequestedBy: "alice", Reason: "changes_requested"}))
	c.waitRun(run2, 30*time.Second, "run 2 to end", func(evs []events.Event) bool { return terminals(evs) > 0 })

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if got := rec.seen[run2]; len(got) != 1 || got[0] != "rename the greeting" {
		t.Fatalf("run 2's conversation has feedback %q, want the one comment once", got)
	}
	if got := rec.seen[run1]; len(got) != 0 {
		t.Fatalf("run 1 saw feedback %q before any was given", got)
	}
}

// gate blocks whoever waits on it while closed, like SIGSTOP.
type gate struct {
	mu     sync.Mutex
	frozen bool
	open   chan struct{}
}

func (g *gate) freeze() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.frozen, g.open = true, make(chan struct{})
}

func (g *gate) thaw() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.frozen {
		g.frozen = false
		close(g.open)
	}
}

func (g *gate) wait() {
	g.mu.Lock()
	frozen, open := g.frozen, g.open
	g.mu.Unlock()
	if frozen {
		<-open
	}
}

// A processor paused past its lease (its driver blocked just before an append, its lease
// renewal blocked too) loses the run to another processor, which fences it at the broker and
// completes the run. Released, the paused one's append fails with ErrFenced: nothing of it
// reaches the log, the log has exactly one terminal event and names the handover.
func TestZombieProcessorIsFenced(t *testing.T) {
	c := newCluster(t, 2)
	const lease = time.Second
	var appendGate, superviseGate gate
	var mu sync.Mutex
	var blocked []events.Envelope // what A tried to append while paused
	var blockedErr []error
	var paused, callPaused bool // callPaused: the append in progress began after the pause
	hooksA := app.Hooks{
		BeforeAppend: func(runID string, envs []events.Envelope) {
			mu.Lock()
			callPaused = paused
			if callPaused {
				blocked = append(blocked, envs...)
			}
			mu.Unlock()
			appendGate.wait()
		},
		// A's append results after the pause, from the driver's point of view.
		AfterAppend: func(_ string, err error) {
			mu.Lock()
			defer mu.Unlock()
			if callPaused {
				blockedErr = append(blockedErr, err)
			}
		},
		BeforeSupervise: superviseGate.wait,
	}
	slow := &executor.Simulated{StepDelay: 300 * time.Millisecond, LogsPerStep: 1}
	a := c.start("zombie-A", lease, slow, hooksA)

	ticket, run := uuid.NewString(), uuid.NewString()
	c.append(events.MustNew(ticket, "", "user:alice", &events.TicketCreatedData{Title: "t", Owner: "alice"}),
		events.MustNew(ticket, run, "user:alice", &events.ProcessingRequestedData{RequestedBy: "alice", Reason: "start"}))
	c.waitRun(run, 30*time.Second, "A to start call_llm", func(evs []events.Event) bool {
		for _, ev := range evs {
			if ev.Type == events.StepStarted && payload[*events.StepStartedData](t, ev).Step == "call_llm" {
				return true
			}
		}
		return false
	})
	mu.Lock()
	paused = true
	mu.Unlock()
	appendGate.freeze()
	superviseGate.freeze()

	c.start("zombie-B", lease, &executor.Simulated{StepDelay: 50 * time.Millisecond, LogsPerStep: 1}, app.Hooks{})
	c.waitRun(run, 30*time.Second, "B to finish the run", func(evs []events.Event) bool { return terminals(evs) > 0 })

	// Release A's driver only: its pending append must be refused by the broker.
	appendGate.thaw()
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(blockedErr)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	superviseGate.thaw()
	for a.driving() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := a.driving(); n != 0 {
		t.Fatalf("A still drives %d runs after being fenced", n)
	}
	mu.Lock()
	if len(blocked) == 0 || len(blockedErr) == 0 {
		t.Fatalf("A never tried to append while paused (%d envelopes, %d results): the test proves nothing", len(blocked), len(blockedErr))
	}
	for _, err := range blockedErr {
		if !errors.Is(err, kafka.ErrFenced) {
			t.Errorf("A's append after the takeover returned %v, want ErrFenced", err)
		}
	}
	zombieIDs := map[string]bool{}
	for _, env := range blocked {
		zombieIDs[env.ID] = true
	}
	mu.Unlock()

	time.Sleep(300 * time.Millisecond) // anything A could still write would be committed by now
	evs := c.runEvents(run)
	if n := terminals(evs); n != 1 {
		t.Fatalf("%d terminal events, want exactly 1:\n%s", n, dump(evs))
	}
	if last := evs[len(evs)-1]; last.Type != events.RunCompleted {
		t.Fatalf("last event %s, want RunCompleted:\n%s", last.Type, dump(evs))
	}
	handovers := 0
	for i, ev := range evs {
		if zombieIDs[ev.ID] {
			t.Errorf("the fenced processor's %s reached the log", ev.Type)
		}
		if ev.Type == events.RunResumed {
			r := payload[*events.RunResumedData](t, ev)
			if r.Owner != "zombie-B" || r.PreviousOwner != "zombie-A" {
				t.Errorf("handover names owner %q, previous %q; want zombie-B after zombie-A", r.Owner, r.PreviousOwner)
			}
			handovers++
			if next := evs[i+1]; next.Type != events.StepStarted || payload[*events.StepStartedData](t, next).Attempt < 2 {
				t.Errorf("the handover is followed by %s %s, want the step retried (StepStarted attempt >= 2)", next.Type, next.Data)
			}
		}
	}
	if handovers != 1 {
		t.Fatalf("%d RunResumed events, want 1:\n%s", handovers, dump(evs))
	}
	var owner, status string
	if err := c.db.QueryRow(context.Background(), `SELECT owner, status FROM processor_runs WHERE run_id = $1`, run).Scan(&owner, &status); err != nil {
		t.Fatal(err)
	}
	if owner != "zombie-B" || status != app.RunTerminal {
		t.Fatalf("run row: owner %q status %q, want zombie-B / terminal", owner, status)
	}
}

// Work spreads over three processors even though one of them consumes every request (the
// topic has one partition): none holds more than twice its share of the open runs, a
// processor that joins takes runs within one lease, and the runs of one that crashes resume
// on the others within one lease of their last renewal.
func TestWorkSpreadsAcrossProcessors(t *testing.T) {
	c := newCluster(t, 1)
	const (
		lease         = 3 * time.Second
		tickets       = 30
		runsPerTicket = 2
	)
	exec := func() executor.Executor {
		return &executor.Simulated{StepDelay: 200 * time.Millisecond, LogsPerStep: 1}
	}
	names := []string{"spread-0", "spread-1", "spread-2"}
	procs := map[string]*procHandle{}
	var mu sync.Mutex
	alive := map[string]bool{}
	startProc := func(name string, hooks app.Hooks) {
		h := c.start(name, lease, exec(), hooks)
		mu.Lock()
		procs[name], alive[name] = h, true
		mu.Unlock()
	}
	startProc(names[0], app.Hooks{})
	startProc(names[1], app.Hooks{SkipRelease: true})

	// Sample who holds the open runs, as the processors see it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var violations []string
	maxRatio := 0.0
	overSince := map[string]time.Time{}
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			// The share is over the processors that are alive and heartbeating: a crashed one
			// keeps its heartbeat (and its runs' leases) for up to one lease, during which its
			// runs may not move yet; counting it would shrink the survivors' share below what
			// they must hold. A joiner counts once it heartbeats, as the processors see it.
			mu.Lock()
			var up []string
			for name, ok := range alive {
				if ok {
					up = append(up, name)
				}
			}
			mu.Unlock()
			var open, live int
			if err := c.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM processor_runs WHERE status <> 'terminal'),
				(SELECT count(*) FROM processor_instances WHERE heartbeat_until > now() AND instance_id = ANY($1))`, up).Scan(&open, &live); err != nil || live == 0 {
				continue
			}
			rows, err := c.db.Query(ctx, `SELECT owner, count(*) FROM processor_runs WHERE status <> 'terminal' AND owner <> '' GROUP BY owner`)
			if err != nil {
				continue
			}
			share := (open + live - 1) / live
			mu.Lock()
			for rows.Next() {
				var owner string
				var n int
				if rows.Scan(&owner, &n) != nil || !alive[owner] {
					continue
				}
				// Runs are handed over at step boundaries, so a processor may be above its
				// share for a moment after the share shrank (a joiner, runs ending
				// elsewhere); it must not stay there.
				if n > max(2, 2*share) {
					if overSince[owner].IsZero() {
						overSince[owner] = time.Now()
					}
					if over := time.Since(overSince[owner]); over > lease {
						violations = append(violations, fmt.Sprintf("%s held %d of %d open runs (%d processors live, share %d) for %s", owner, n, open, live, share, over.Round(time.Millisecond)))
					}
				} else {
					delete(overSince, owner)
				}
				if share > 0 {
					maxRatio = max(maxRatio, float64(n)/float64(share))
				}
			}
			mu.Unlock()
			rows.Close()
		}
	}()

	ids := make([]string, tickets)
	for i := range ids {
		ids[i] = uuid.NewString()
		c.append(events.MustNew(ids[i], "", "user:alice", &events.TicketCreatedData{Title: fmt.Sprint("ticket ", i), Owner: "alice"}))
	}
	var requested []string
	current, runsOf := map[string]string{}, map[string]int{}
	request := func(ticket string) {
		run := uuid.NewString()
		requested = append(requested, run)
		current[ticket] = run
		runsOf[ticket]++
		c.append(events.MustNew(ticket, run, "user:alice", &events.ProcessingRequestedData{RequestedBy: "alice", Reason: "start"}))
	}
	for _, id := range ids {
		request(id)
	}
	// The joiner starts once the first two own every first run: it can then get running runs
	// only by handover (had it joined earlier, it could take its share of them unowned, and
	// the test would see no handover to prove).
	for deadline := time.Now().Add(30 * time.Second); ; {
		var owned int
		if err := c.db.QueryRow(context.Background(), `SELECT count(*) FROM processor_runs WHERE owner <> ''`).Scan(&owned); err != nil {
			t.Fatal(err)
		}
		if owned >= tickets {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of the %d first runs owned after 30 s", owned, tickets)
		}
		time.Sleep(20 * time.Millisecond)
	}

	joined := time.Now()
	startProc(names[2], app.Hooks{})
	ownsRun := func(name string) bool {
		var n int
		_ = c.db.QueryRow(context.Background(), `SELECT count(*) FROM processor_runs WHERE owner = $1`, name).Scan(&n)
		return n > 0
	}
	for !ownsRun(names[2]) {
		if time.Since(joined) > lease {
			t.Fatalf("the processor that joined took no run within one lease (%s)", lease)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("joined processor took its first run after %s", time.Since(joined).Round(time.Millisecond))

	crashed := false
	var orphans []string
	var crashedAt time.Time
	deadline := time.Now().Add(60 * time.Second)
	for {
		ended, perRun := 0, map[string]int{}
		for _, ev := range c.events() {
			if events.Terminal(ev.Type) {
				perRun[ev.RunID]++
			}
		}
		for _, run := range requested {
			if perRun[run] > 0 {
				ended++
			}
		}
		for _, ticket := range ids {
			if perRun[current[ticket]] > 0 && runsOf[ticket] < runsPerTicket {
				request(ticket)
			}
		}
		if ended == tickets*runsPerTicket && len(requested) == tickets*runsPerTicket {
			for _, run := range requested {
				if perRun[run] != 1 {
					t.Errorf("run %s has %d terminal events", run, perRun[run])
				}
			}
			break
		}
		if !crashed && ended >= tickets/2 {
			crashed = true
			rows, err := c.db.Query(context.Background(), `SELECT run_id FROM processor_runs WHERE owner = $1 AND status <> 'terminal'`, names[1])
			if err != nil {
				t.Fatal(err)
			}
			orphans, err = pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if len(orphans) == 0 {
				crashed = false // nothing to take over yet: crash it once it drives a run
			} else {
				mu.Lock()
				alive[names[1]] = false
				mu.Unlock()
				crashedAt = time.Now()
				procs[names[1]].stop() // SkipRelease: its leases stay until they expire
				t.Logf("crashed %s holding %d open runs", names[1], len(orphans))
			}
		}
		if crashed && len(orphans) > 0 {
			var left int
			_ = c.db.QueryRow(context.Background(), `SELECT count(*) FROM processor_runs WHERE run_id = ANY($1) AND owner = $2 AND status <> 'terminal'`,
				orphans, names[1]).Scan(&left)
			if left == 0 {
				t.Logf("the crashed processor's runs resumed elsewhere after %s", time.Since(crashedAt).Round(time.Millisecond))
				orphans = nil
			} else if time.Since(crashedAt) > lease+2*time.Second {
				t.Fatalf("%d runs of the crashed processor still not taken over %s after the crash", left, time.Since(crashedAt))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d runs ended", ended, tickets*runsPerTicket)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	<-sampled
	if !crashed {
		t.Fatal("no processor was crashed: the takeover was not exercised")
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("max runs held / share over the samples: %.2f", maxRatio)
	// The joiner found the first processors holding the backlog between them: it must have
	// been handed some of it at step boundaries, each handover starting the next step afresh.
	handovers := 0
	evs := c.events()
	for i, ev := range evs {
		if ev.Type != events.RunResumed {
			continue
		}
		r := payload[*events.RunResumedData](t, ev)
		if r.Attempt != 1 || r.PreviousOwner == "" {
			continue // a takeover after the crash (a step retried), or a run accepted unowned
		}
		handovers++
		for _, next := range evs[i+1:] {
			if next.RunID == ev.RunID && next.Type == events.RunResumed {
				break // its new owner crashed before starting the step: a takeover retries it
			}
			if next.RunID != ev.RunID || next.Type != events.StepStarted {
				continue
			}
			if st := payload[*events.StepStartedData](t, next); st.Step != r.Step || st.Attempt != 1 {
				t.Errorf("run %s handed over before %s, then started %s attempt %d", ev.RunID, r.Step, st.Step, st.Attempt)
			}
			break
		}
	}
	t.Logf("%d runs handed over at a step boundary", handovers)
	if handovers == 0 {
		t.Error("no run was handed over: the joiner took only new or orphaned runs")
	}
	if maxRatio == 0 {
		t.Fatal("no sample taken")
	}
	for _, v := range violations[:min(len(violations), 10)] {
		t.Error(v)
	}
}
