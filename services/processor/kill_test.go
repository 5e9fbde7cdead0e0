package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/gittest"
	"github.com/ticketflow/ticketflow/libs/sandboxtest"
)

// TestSurvivesKill9 runs the processor binary, SIGKILLs it at random moments while runs are
// in flight, restarts it each time, and then checks the whole event log: every requested run
// has exactly one terminal event and nothing after it, no run started twice, and the
// interrupted steps were retried (StepStarted with attempt >= 2).
func TestSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a real processor repeatedly")
	}
	killScenario{
		env:     []string{"TICKETFLOW_EXECUTOR=simulated", "TICKETFLOW_SIM_STEP_DELAY=150ms", "TICKETFLOW_SIM_LOGS_PER_STEP=2"},
		tickets: 10, runsPerTicket: 5, minKills: 8, maxKills: 12,
		ticket: func(i int) *events.TicketCreatedData {
			failure := ""
			if i%2 == 1 {
				failure = "once" // CI fails on the first iteration: the loop back to call_llm is exercised too
			}
			return &events.TicketCreatedData{Title: fmt.Sprintf("ticket %d", i), Description: "kill test",
				RepositoryURL: "https://example.invalid/repo.git", BaseBranch: "main", CICommand: "make test", SimulateFailure: failure}
		},
	}.run(t)
}

// TestRealExecutorSurvivesKill9 is the same with the real executor: git work dirs, the demo
// provider, commits pushed to a file:// origin and a CI child process that a kill orphans.
// Every completed run's branch must be in the origin.
func TestRealExecutorSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a real processor repeatedly")
	}
	repo, _ := gittest.Origin(t, map[string]string{"README.md": "# repo\n"})
	ks := killScenario{
		env: []string{"TICKETFLOW_EXECUTOR=real", "TICKETFLOW_FILE_REPO_ROOT=" + filepath.Dir(strings.TrimPrefix(repo, "file://")), "TICKETFLOW_WORK_DIR=" + sandboxtest.Dir(t), // reachable by the bwrap sandbox's uid

			"TICKETFLOW_LLM_PROVIDER=demo"},
		tickets: 4, runsPerTicket: 4, minKills: 6, maxKills: 8,
		ticket: func(i int) *events.TicketCreatedData {
			return &events.TicketCreatedData{Title: fmt.Sprintf("real ticket %d", i), Description: "kill test", RepositoryURL: repo,
				BaseBranch: "main", CICommand: "echo ci start; sleep 1; test -f ticketflow-demo.md && echo ci ok"}
		},
	}
	completed, output := ks.run(t)
	t.Logf("orphaned CI process groups stopped on resume: %d", strings.Count(output, "stopped the CI process group"))
	bare := strings.TrimPrefix(repo, "file://")
	for _, c := range completed {
		out, err := exec.Command("git", "-C", bare, "rev-parse", "--verify", "refs/heads/"+c.Branch).CombinedOutput()
		if err != nil {
			t.Errorf("completed run's branch %s is not in the origin: %s", c.Branch, out)
		}
	}
	if len(completed) == 0 {
		t.Error("no run completed")
	}
}

// killScenario is one kill test: tickets with runsPerTicket sequential runs each, and the
// processor SIGKILLed minKills..maxKills times while they run.
type killScenario struct {
	env                    []string
	tickets, runsPerTicket int
	minKills, maxKills     int
	ticket                 func(i int) *events.TicketCreatedData
}

// run plays the scenario, checks the log and returns the RunCompleted payloads and the
// processor's output.
func (ks killScenario) run(t *testing.T) ([]*events.RunCompletedData, string) {
	e := newEnv(t)
	proc := e.processor(append([]string{"TICKETFLOW_PROCESSOR_LEASE=5s", "MAX_ITERATIONS=20"}, ks.env...)...)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))

	tickets, runsPerTicket := ks.tickets, ks.runsPerTicket
	d := newKillDriver(e, runsPerTicket)
	for i := 0; i < tickets; i++ {
		id := uuid.NewString()
		data := ks.ticket(i)
		data.Owner = "kill-test"
		e.append(events.MustNew(id, "", "user:kill-test", data))
		d.tickets = append(d.tickets, id)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	driverDone := make(chan struct{})
	go func() { defer close(driverDone); d.run(ctx, e.tail(ctx)) }()
	for _, id := range d.tickets {
		d.request(ctx, id, true)
	}

	proc.start()
	kills := ks.minKills + rng.IntN(ks.maxKills-ks.minKills+1)
	for k := 0; k < kills; k++ {
		if d.finished() {
			kills = k
			break
		}
		time.Sleep(time.Duration(150+rng.IntN(1200)) * time.Millisecond)
		proc.stop(syscall.SIGKILL)
		t.Logf("kill %d/%d: %s", k+1, kills, d.progress())
		proc.start()
	}
	deadline := time.After(3 * time.Minute)
	for !d.finished() {
		select {
		case <-deadline:
			t.Fatalf("runs did not all end: %s", d.progress())
		case <-time.After(100 * time.Millisecond):
		}
	}
	time.Sleep(500 * time.Millisecond) // a late duplicate would have time to show up
	proc.stop(syscall.SIGTERM)
	cancel()
	<-driverDone
	if err := d.error(); err != nil {
		t.Fatal(err)
	}

	// The whole log, read afresh.
	byRun := map[string][]events.Event{}
	var retried []string
	for _, ev := range e.readAll() {
		if ev.RunID == "" {
			continue
		}
		byRun[ev.RunID] = append(byRun[ev.RunID], ev)
		if ev.Type == events.StepStarted {
			p, err := ev.Decode()
			if err != nil {
				t.Fatalf("StepStarted %s: %v", ev.ID, err)
			}
			if s := p.(*events.StepStartedData); s.Attempt >= 2 {
				retried = append(retried, fmt.Sprintf("%s/%s#%d", ev.RunID[:8], s.Step, s.Attempt))
			}
		}
	}
	accepted, rejected, outcomes := 0, 0, map[events.Type]int{}
	var completed []*events.RunCompletedData
	for _, runID := range d.requestedRuns() {
		evs := byRun[runID]
		var terminals []events.Type
		started := 0
		ciResults := map[int]int{}
		for _, ev := range evs {
			if ev.Type == events.CIResult {
				p, err := ev.Decode()
				if err != nil {
					t.Fatal(err)
				}
				if it := p.(*events.CIResultData).Iteration; ciResults[it] > 0 {
					t.Errorf("run %s: CIResult of iteration %d appended twice", runID, it)
				} else {
					ciResults[it]++
				}
			}
			if events.Terminal(ev.Type) {
				terminals = append(terminals, ev.Type)
			}
			if ev.Type == events.RunStarted {
				started++
			}
		}
		if len(terminals) != 1 {
			t.Errorf("run %s: %d terminal events %v, want exactly 1", runID, len(terminals), terminals)
			continue
		}
		if last := evs[len(evs)-1]; !events.Terminal(last.Type) {
			t.Errorf("run %s: %s appended after its terminal event", runID, last.Type)
		}
		outcomes[terminals[0]]++
		if last := evs[len(evs)-1]; last.Type == events.RunCompleted {
			p, err := last.Decode()
			if err != nil {
				t.Fatal(err)
			}
			completed = append(completed, p.(*events.RunCompletedData))
		}
		if terminals[0] == events.RunRejected {
			rejected++
			if len(evs) != 2 { // the request and its rejection
				t.Errorf("rejected run %s has %d events", runID, len(evs))
			}
			continue
		}
		accepted++
		if started != 1 {
			t.Errorf("run %s: %d RunStarted events, want 1", runID, started)
		}
	}
	t.Logf("%d kills; %d runs accepted, %d rejected; outcomes %v; %d retried steps, e.g. %v", kills, accepted, rejected, outcomes, len(retried), retried[:min(len(retried), 8)])
	if accepted < tickets*runsPerTicket {
		t.Errorf("only %d runs accepted, want %d", accepted, tickets*runsPerTicket)
	}
	if len(retried) == 0 {
		t.Error("no StepStarted with attempt >= 2: no interrupted step was retried")
	}
	return completed, proc.output()
}

// killDriver keeps every ticket busy: when a ticket's run ends it requests the next, until
// each ticket had runsPerTicket accepted runs. Some runs are cancelled as they start, and the
// second request of each ticket comes with a duplicate that must be rejected.
type killDriver struct {
	e             *env
	runsPerTicket int
	tickets       []string

	mu        sync.Mutex
	err       error
	requested []string
	current   map[string]string // ticket -> run id awaited
	accepted  map[string]int    // ticket -> accepted runs so far
	dupes     map[string]bool   // run ids requested as duplicates
	ended     map[string]bool
}

func newKillDriver(e *env, runsPerTicket int) *killDriver {
	return &killDriver{e: e, runsPerTicket: runsPerTicket, current: map[string]string{}, accepted: map[string]int{},
		dupes: map[string]bool{}, ended: map[string]bool{}}
}

func (d *killDriver) fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err == nil {
		d.err = err
	}
}

func (d *killDriver) error() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

func (d *killDriver) appendEnv(ctx context.Context, env events.Envelope) {
	actx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := d.e.producer.Append(actx, env); err != nil && ctx.Err() == nil {
		d.fail(fmt.Errorf("append %s: %w", env.Type, err))
	}
}

// request appends the ticket's next run request (and, for its second run, a duplicate).
func (d *killDriver) request(ctx context.Context, ticket string, first bool) {
	runID := uuid.NewString()
	d.mu.Lock()
	d.current[ticket] = runID
	d.requested = append(d.requested, runID)
	dupe := !first && d.accepted[ticket] == 1
	dupeID := uuid.NewString()
	if dupe {
		d.requested = append(d.requested, dupeID)
		d.dupes[dupeID] = true
	}
	d.mu.Unlock()
	d.appendEnv(ctx, events.MustNew(ticket, runID, "user:kill-test", &events.ProcessingRequestedData{RequestedBy: "kill-test", Reason: "start"}))
	if dupe {
		d.appendEnv(ctx, events.MustNew(ticket, dupeID, "user:kill-test", &events.ProcessingRequestedData{RequestedBy: "kill-test", Reason: "start"}))
	}
}

func (d *killDriver) run(ctx context.Context, evs <-chan events.Event) {
	for ev := range evs {
		if ev.RunID == "" {
			continue
		}
		d.mu.Lock()
		isCurrent := d.current[ev.TicketID] == ev.RunID
		n := len(d.requested)
		d.mu.Unlock()
		switch {
		case ev.Type == events.RunStarted && isCurrent && n%5 == 2:
			d.appendEnv(ctx, events.MustNew(ev.TicketID, ev.RunID, "user:kill-test", &events.CancelRequestedData{RequestedBy: "kill-test"}))
		case events.Terminal(ev.Type):
			d.mu.Lock()
			if d.ended[ev.RunID] {
				d.mu.Unlock()
				continue // a duplicate terminal: the final check reports it
			}
			d.ended[ev.RunID] = true
			if !isCurrent {
				d.mu.Unlock()
				continue
			}
			if ev.Type != events.RunRejected {
				d.accepted[ev.TicketID]++
			}
			more := d.accepted[ev.TicketID] < d.runsPerTicket
			if !more {
				delete(d.current, ev.TicketID)
			}
			d.mu.Unlock()
			if more {
				if ev.Type == events.RunRejected {
					time.Sleep(300 * time.Millisecond) // the ticket's previous run is still finishing
				}
				d.request(ctx, ev.TicketID, false)
			}
		}
	}
}

func (d *killDriver) finished() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.current) > 0 {
		return false
	}
	for _, id := range d.requested {
		if !d.ended[id] {
			return false
		}
	}
	return true
}

func (d *killDriver) progress() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fmt.Sprintf("%d runs requested, %d ended, %d tickets still busy", len(d.requested), len(d.ended), len(d.current))
}

func (d *killDriver) requestedRuns() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.requested...)
}
