package executor

import (
	"context"
	"fmt"
	"time"

	"github.com/ticketflow/ticketflow/libs/workflow"
)

// Simulated walks the workflow without touching git, an LLM or a CI system: each step
// waits StepDelay and logs what a real one would do. CI fails when the ticket asks for it
// (simulate_failure "always", or "once" for the first iteration) or when FailCI is set, which
// is how tests drive the MAX_ITERATIONS loop.
type Simulated struct {
	StepDelay time.Duration
	FailCI    bool
	// LogsPerStep is how many LogEmitted lines each step writes (at least one).
	LogsPerStep int
}

func (s *Simulated) Name() string { return "simulated" }

func (s *Simulated) work(ctx context.Context, run *Run, lines ...string) error {
	n := max(s.LogsPerStep, 1)
	for i := 0; i < n; i++ {
		line := lines[i%len(lines)]
		if n > len(lines) {
			line = fmt.Sprintf("%s (%d/%d)", line, i+1, n)
		}
		if err := run.Log(ctx, "INFO", line); err != nil {
			return err
		}
		if err := sleep(ctx, s.StepDelay/time.Duration(n)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Simulated) Resume(context.Context, *Run) error { return nil }

func (s *Simulated) PrepareRepository(ctx context.Context, run *Run) error {
	repo := run.Ticket.RepositoryURL
	if repo == "" {
		repo = workflow.LogSimNoRepository
	}
	return s.work(ctx, run, fmt.Sprintf(workflow.LogSimClone, repo), fmt.Sprintf(workflow.LogSimCheckout, run.Ticket.BaseBranch))
}

func (s *Simulated) LoadConversation(ctx context.Context, run *Run) error {
	return s.work(ctx, run, fmt.Sprintf(workflow.LogSimConversation, len(run.Ticket.Feedback)))
}

func (s *Simulated) CallLLM(ctx context.Context, run *Run) error {
	run.State.LLMSummary = fmt.Sprintf("simulated change for iteration %d", run.Iteration)
	return s.work(ctx, run, workflow.LogSimCallLLM, fmt.Sprintf(workflow.LogSimChange, run.State.LLMSummary))
}

func (s *Simulated) CommitChanges(ctx context.Context, run *Run) error {
	run.State.Branch = fmt.Sprintf("ticketflow/%s/%d", run.Ticket.ID, run.Iteration)
	return s.work(ctx, run, fmt.Sprintf(workflow.LogSimCommit, run.State.Branch))
}

func (s *Simulated) RunCI(ctx context.Context, run *Run) (CIOutcome, error) {
	start := time.Now()
	fail := s.FailCI || run.Ticket.SimulateFailure == "always" || (run.Ticket.SimulateFailure == "once" && run.Iteration == 1)
	lines := []string{"$ make test", "ok  ticketflow/simulated  0.042s"}
	if fail {
		lines = []string{"$ make test", "--- FAIL: TestSimulated (0.01s)", "FAIL"}
	}
	for _, l := range lines {
		if err := run.Output(ctx, "stdout", l); err != nil {
			return CIOutcome{}, err
		}
		if err := sleep(ctx, s.StepDelay/time.Duration(len(lines))); err != nil {
			return CIOutcome{}, err
		}
	}
	out := CIOutcome{Passed: !fail, DurationMS: time.Since(start).Milliseconds(), OutputTail: lines[len(lines)-1]}
	if fail {
		out.ExitCode = 1
	}
	return out, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
