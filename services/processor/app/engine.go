package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/telemetry"
	"github.com/ticketflow/ticketflow/libs/workflow"
	"github.com/ticketflow/ticketflow/services/processor/agent"
	"github.com/ticketflow/ticketflow/services/processor/executor"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// errCancelled ends a run whose cancellation was requested.
var errCancelled = errors.New("run cancelled")

// drive runs (or resumes) one run to its terminal event. Before each step it records the
// step and attempt in PostgreSQL, then appends StepStarted; a crash anywhere means the next
// owner finds the step recorded and retries it with attempt+1, so the retry shows in the
// history. The terminal event is stored before it is appended (see beginTerminal), which is
// what makes "exactly one terminal event per run" hold across crashes.
func (a *Application) drive(ctx context.Context, runID string) (err error) {
	// The run was claimed in PostgreSQL before this; opening its producer now fences, at the
	// broker, whoever drove it before (a previous incarnation, or a processor that was paused
	// past its lease). Only then is the run's state read: everything the previous owner
	// stored or appended before being shut out is in it or in the log.
	ap, err := a.openRun(ctx, runID)
	if err != nil {
		return fmt.Errorf("open run %s: %w", runID, err)
	}
	defer ap.Close()
	row, err := a.store.Run(ctx, runID)
	if err != nil {
		return fmt.Errorf("load run %s: %w", runID, err)
	}
	if row.Owner != a.cfg.InstanceID {
		return ErrLeaseLost
	}
	ctx, span := telemetry.Tracer().Start(a.requestTrace(ctx, row), "processor run", trace.WithAttributes(
		attribute.String("ticketflow.run_id", runID), attribute.String("ticketflow.ticket_id", row.TicketID)))
	defer func() {
		if !errors.Is(err, context.Canceled) {
			telemetry.RecordError(span, err)
		}
		span.End()
	}()
	switch row.Status {
	case RunTerminal:
		return nil
	case RunTerminating:
		return a.recoverTerminal(ctx, ap, row)
	}
	unlock, err := a.lockTicket(ctx, row.TicketID)
	if err != nil {
		return err
	}
	defer unlock()
	ticket, used, err := a.store.Ticket(ctx, row.TicketID)
	if err != nil {
		return fmt.Errorf("load ticket %s: %w", row.TicketID, err)
	}
	if ticket.EarlierRuns, err = a.store.EarlierRuns(ctx, row.TicketID, runID); err != nil {
		return fmt.Errorf("load earlier runs of ticket %s: %w", row.TicketID, err)
	}
	d := &driver{a: a, row: row, ap: ap, run: &executor.Run{ID: runID, Ticket: ticket, Iteration: row.Iteration, State: row.State}}
	d.run.Log = d.log
	d.run.Output = d.output
	d.run.OutputLines = d.outputLines
	d.run.Emit = d.append

	terminal, err := d.execute(ctx, used)
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: another start resumes the run
	}
	if lostRun(err) {
		return err // another processor drives the run now: nothing more from this one
	}
	if errors.Is(err, errCancelled) || a.cancelRequested(ctx, runID) != "" {
		by := a.cancelRequested(ctx, runID)
		terminal = &events.RunCancelledData{Step: d.run.Step, Message: workflow.MessageCancelled, Reason: "cancelled by " + by}
	} else if err != nil && terminal == nil {
		terminal = &events.RunFailedData{Step: d.run.Step, Message: fmt.Sprintf(workflow.MessageStepFailed, d.run.Step), Error: err.Error()}
	}
	withLLMTotals(terminal, d.run.State.LLM)
	if f, ok := a.exec.(executor.Finisher); ok {
		// The run's end on its pull request (ready for review, the final status): before
		// the terminal event, so its log lines belong to the run. Only the run's own appends
		// fail it, and then the terminal append would fail as well.
		if err := f.FinishRun(ctx, d.run, terminal); err != nil {
			a.log.Warn("finishing the run on its forge", "run_id", runID, "err", err)
		}
	}
	return a.finish(ctx, ap, row, terminal)
}

// withLLMTotals puts what the run's model calls used on its RunCompleted or RunFailed.
func withLLMTotals(terminal events.Payload, spent *agent.Spent) {
	if spent == nil {
		return
	}
	switch t := terminal.(type) {
	case *events.RunCompletedData:
		t.LLMInputTokens, t.LLMOutputTokens, t.LLMCostUSD = spent.InputTokens, spent.OutputTokens, spent.CostUSD
	case *events.RunFailedData:
		t.LLMInputTokens, t.LLMOutputTokens, t.LLMCostUSD = spent.InputTokens, spent.OutputTokens, spent.CostUSD
	}
}

// requestTracer is an EventLog that reads the trace context of a run's request record.
type requestTracer interface {
	RequestTrace(ctx context.Context, partition int32, offset int64) (trace.SpanContext, error)
}

// requestTrace is ctx under the trace of row's request: as it is when the request's record
// started the driver here, or read back from the record when the run was claimed or resumed
// (another processor's lease expired, a restart), so one run stays one trace.
func (a *Application) requestTrace(ctx context.Context, row RunRow) context.Context {
	if trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	rt, ok := a.eventLog.(requestTracer)
	if !ok {
		return ctx
	}
	sc, err := rt.RequestTrace(ctx, row.Partition, row.RequestOffset)
	if err != nil || !sc.IsValid() {
		return ctx // no trace to continue: the run's span starts its own
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// lostRun reports the errors meaning the run belongs to another processor now: fenced at the
// broker, or its lease taken in PostgreSQL. The driver stops at once, retries nothing and
// releases nothing (none of it is its own any more).
func lostRun(err error) bool {
	return errors.Is(err, kafka.ErrFenced) || errors.Is(err, ErrLeaseLost) || errors.Is(err, errHandedOver)
}

// errHandedOver ends a driver that gave its run up at a step boundary (see markSurplus).
var errHandedOver = errors.New("run handed over to another processor")

type driver struct {
	a   *Application
	row RunRow
	ap  *runAppender
	run *executor.Run
}

// execute walks the workflow from where the run stands and returns its terminal payload.
// The run's position is (step, attempt, iteration) in processor_runs; each loop turn runs
// one step and computes the next, so a resumed run continues exactly where it stopped.
func (d *driver) execute(ctx context.Context, used int) (events.Payload, error) {
	a := d.a
	step, attempt := d.row.Step, d.row.Attempt+1
	iteration := d.row.Iteration
	if step == "" {
		if err := d.start(ctx, used); err != nil {
			return nil, err
		}
		step, attempt = workflow.CheckIterations.Name, 1
	} else {
		// The history says who drives the run from here before the retried step starts.
		if err := d.resumed(ctx, step, attempt); err != nil {
			return nil, err
		}
		if step != workflow.CheckIterations.Name && step != workflow.PrepareRepository.Name {
			// The work dir and conversation went with the crashed process: rebuild them quietly.
			d.run.Iteration = iteration
			if err := a.exec.Resume(ctx, d.run); err != nil {
				return nil, err
			}
		}
	}
	for first := true; ; first = false {
		d.run.Iteration = iteration
		if !first && a.handingOver(d.row.RunID) {
			if err := a.store.HandOver(ctx, d.row.RunID, step, iteration, d.run.State); err != nil {
				return nil, err
			}
			return nil, errHandedOver
		}
		s, _ := workflow.StepByName(step)
		var outcome workflow.Outcome
		err := d.step(ctx, s, attempt, func(ctx context.Context) (err error) {
			outcome, err = d.act(ctx, step, used, iteration)
			return err
		})
		if err != nil {
			return nil, err
		}
		attempt = 1
		t, err := workflow.Next(step, outcome)
		if err != nil {
			return nil, err
		}
		if t.NewIteration {
			// iteration is 0 until check_iterations has run, and at least used after it (used
			// is the ticket's iteration count when the run was loaded; call_llm raises that
			// count to the current iteration): the first is used+1, each later one the last+1.
			iteration = max(iteration, used) + 1
		}
		switch {
		case t.Next != "":
			if outcome == workflow.CIFailed { // back to call_llm with the CI output
				ci := d.run.State.LastCI
				if err := d.log(ctx, "WARNING", fmt.Sprintf(workflow.LogCIRetry, ci.ExitCode, iteration, a.cfg.MaxIterations)); err != nil {
					return nil, err
				}
				d.run.State.LastCI = nil
			}
			step = t.Next
		case t.End == workflow.Completed:
			return &events.RunCompletedData{Iteration: iteration, Branch: d.run.State.Branch, Message: workflow.MessageCompleted}, nil
		case t.End == workflow.Cancelled:
			return &events.RunCancelledData{Step: step, Message: workflow.MessageIterationsExhausted,
				Reason: fmt.Sprintf("MAX_ITERATIONS (%d) reached", a.cfg.MaxIterations)}, nil
		default:
			ci := d.run.State.LastCI
			return &events.RunFailedData{Step: step, Message: workflow.MessageCIFailedLast,
				Error: fmt.Sprintf("CI failed (exit code %d) after %d iterations: %s", ci.ExitCode, iteration, ci.OutputTail)}, nil
		}
	}
}

// act does step's work and returns its outcome for the workflow graph.
func (d *driver) act(ctx context.Context, step string, used, iteration int) (workflow.Outcome, error) {
	a := d.a
	switch step {
	case workflow.CheckIterations.Name:
		if err := d.log(ctx, "INFO", fmt.Sprintf(workflow.LogIterationsUsed, used, a.cfg.MaxIterations)); err != nil {
			return "", err
		}
		if used >= a.cfg.MaxIterations {
			return workflow.IterationsExhausted, nil
		}
		return workflow.Done, nil
	case workflow.PrepareRepository.Name:
		return workflow.Done, a.exec.PrepareRepository(ctx, d.run)
	case workflow.LoadConversation.Name:
		return workflow.Done, a.exec.LoadConversation(ctx, d.run)
	case workflow.CallLLM.Name:
		if err := a.store.UseIteration(ctx, d.row.RunID, d.run.Ticket.ID, iteration); err != nil {
			return "", err
		}
		return workflow.Done, a.exec.CallLLM(ctx, d.run)
	case workflow.CommitChanges.Name:
		return workflow.Done, a.exec.CommitChanges(ctx, d.run)
	case workflow.RunCI.Name:
		out, err := a.exec.RunCI(ctx, d.run)
		if err == nil {
			d.run.State.LastCI = &out
			result := "failed"
			if out.Passed {
				result = "passed"
			}
			telemetry.Observe(ctx, a.metrics.ciDuration.WithLabelValues(result), float64(out.DurationMS)/1000)
		}
		return workflow.Done, err
	case workflow.HandleCIResult.Name:
		ci := d.run.State.LastCI
		if ci == nil {
			return "", errors.New("no CI result recorded for this iteration")
		}
		outcome := workflow.CIPassed
		switch {
		case ci.Passed:
		case iteration >= a.cfg.MaxIterations:
			outcome = workflow.CIFailedLast
		default:
			outcome = workflow.CIFailed
		}
		if d.run.Attempt > 1 { // the interrupted attempt may have appended it already
			found, err := a.eventLog.HasEvent(ctx, d.row.Partition, d.row.RequestOffset, func(e events.Envelope) bool {
				return e.RunID == d.row.RunID && e.Type == events.CIResult && ciIteration(e) == iteration
			})
			if err != nil || found {
				return outcome, err
			}
		}
		return outcome, d.append(ctx, &events.CIResultData{Iteration: iteration, Passed: ci.Passed, ExitCode: ci.ExitCode,
			DurationMS: ci.DurationMS, OutputTail: ci.OutputTail})
	}
	return "", fmt.Errorf("unknown step %q", step)
}

// start appends the run's RunStarted once. The intent (attempt 1 before any step) is recorded
// first; a run found with that intent after a crash appends RunStarted only if the log does
// not hold one for the run already.
func (d *driver) start(ctx context.Context, used int) error {
	a := d.a
	if d.row.Attempt > 0 {
		found, err := a.eventLog.HasEvent(ctx, d.row.Partition, d.row.RequestOffset, func(e events.Envelope) bool {
			return e.RunID == d.row.RunID && e.Type == events.RunStarted
		})
		if err != nil {
			return err
		}
		if found {
			return d.resumed(ctx, "", 0)
		}
	} else if err := a.store.StartStep(ctx, d.row.RunID, "", 1, 0, d.run.State); err != nil {
		return err
	}
	return d.append(ctx, &events.RunStartedData{Iteration: used + 1, MaxIterations: a.cfg.MaxIterations, Executor: a.exec.Name()})
}

// step records intent, appends StepStarted, runs fn, appends StepCompleted.
func (d *driver) step(ctx context.Context, s workflow.Step, attempt int, fn func(context.Context) error) error {
	if d.a.cancelRequested(ctx, d.row.RunID) != "" {
		return errCancelled
	}
	d.run.Step, d.run.Attempt = s.Name, attempt
	if err := d.a.store.StartStep(ctx, d.row.RunID, s.Name, attempt, d.run.Iteration, d.run.State); err != nil {
		return err
	}
	if err := d.append(ctx, &events.StepStartedData{Step: s.Name, Progress: s.Progress, Message: s.Message,
		Iteration: d.run.Iteration, Attempt: attempt}); err != nil {
		return err
	}
	start := time.Now()
	// One span per step attempt, child of the run's: git, LLM, CI and database work are its
	// children.
	spanCtx, span := telemetry.Tracer().Start(ctx, "step "+s.Name, trace.WithAttributes(attribute.String("ticketflow.step", s.Name),
		attribute.Int("ticketflow.step.attempt", attempt), attribute.Int("ticketflow.iteration", d.run.Iteration)))
	stepCtx, stop := d.a.watchCancel(spanCtx, d.row.RunID)
	err := fn(stepCtx)
	cancelled := stepCtx.Err() != nil // read before stop(), which cancels stepCtx itself
	stop()
	outcome, errText := "ok", ""
	if err != nil {
		if ctx.Err() != nil {
			span.End()
			return ctx.Err() // shutdown: no StepCompleted, the step is retried
		}
		if cancelled {
			err = errCancelled
		}
		outcome, errText = "failed", err.Error()
		telemetry.RecordError(span, err)
	}
	span.SetAttributes(attribute.String("ticketflow.step.outcome", outcome))
	telemetry.Observe(spanCtx, d.a.metrics.stepDuration.WithLabelValues(s.Name, outcome), time.Since(start).Seconds())
	span.End()
	if saveErr := d.a.store.SaveState(ctx, d.row.RunID, d.run.State); saveErr != nil {
		return saveErr
	}
	if appendErr := d.append(ctx, &events.StepCompletedData{Step: s.Name, Progress: s.Progress, Iteration: d.run.Iteration,
		Attempt: attempt, Outcome: outcome, DurationMS: time.Since(start).Milliseconds(), Error: errText}); appendErr != nil {
		return appendErr
	}
	return err
}

func (d *driver) log(ctx context.Context, level, message string) error {
	return d.append(ctx, &events.LogEmittedData{Level: level, Message: message, Step: d.run.Step})
}

// resumed appends the handover: this processor drives the run from here, retrying step
// (empty when the run had started but no step had) with attempt.
func (d *driver) resumed(ctx context.Context, step string, attempt int) error {
	return d.append(ctx, &events.RunResumedData{Owner: d.a.cfg.InstanceID, PreviousOwner: d.row.PreviousOwner,
		Step: step, Attempt: attempt, Iteration: d.row.Iteration})
}

func (d *driver) append(ctx context.Context, payload events.Payload) error {
	env, err := events.New(d.row.TicketID, d.row.RunID, d.a.actor, payload)
	if err != nil {
		return err
	}
	_, err = d.ap.Append(ctx, env)
	return err
}

func (d *driver) output(ctx context.Context, stream, line string) error {
	return d.outputLines(ctx, []executor.OutputLine{{Stream: stream, Text: line}})
}

func (d *driver) outputLines(ctx context.Context, lines []executor.OutputLine) error {
	envs := make([]events.Envelope, 0, len(lines))
	for _, l := range lines {
		level := "INFO"
		if l.Stream == "stderr" {
			level = "WARNING"
		}
		env, err := events.New(d.row.TicketID, d.row.RunID, d.a.actor, &events.LogEmittedData{Level: level, Message: l.Text, Step: d.run.Step, Stream: l.Stream})
		if err != nil {
			return err
		}
		envs = append(envs, env)
	}
	_, err := d.ap.Append(ctx, envs...) // one transaction for the whole batch
	return err
}

// finish appends the run's single terminal event.
func (a *Application) finish(ctx context.Context, ap *runAppender, row RunRow, terminal events.Payload) error {
	env, err := events.New(row.TicketID, row.RunID, a.actor, terminal)
	if err != nil {
		return err
	}
	if err := a.store.BeginTerminal(ctx, row.RunID, env); err != nil {
		return err
	}
	if _, err := ap.Append(ctx, env); err != nil {
		return err
	}
	a.metrics.runs.WithLabelValues(string(env.Type)).Inc()
	telemetry.Observe(ctx, a.metrics.runDuration.WithLabelValues(string(env.Type)), time.Since(ap.opened).Seconds())
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("ticketflow.run.outcome", string(env.Type)))
	return a.store.FinishTerminal(ctx, row.RunID, row.TicketID)
}

// recoverTerminal completes a run that crashed between storing and confirming its terminal
// event: the event is appended only if the log does not already hold it. The scan is exact:
// ap's creation fenced every earlier producer of the run, so whatever they appended is decided.
func (a *Application) recoverTerminal(ctx context.Context, ap *runAppender, row RunRow) error {
	var env events.Envelope
	if err := json.Unmarshal(row.PendingEvent, &env); err != nil {
		return fmt.Errorf("run %s: stored terminal event unreadable: %w", row.RunID, err)
	}
	found, err := a.eventLog.HasEvent(ctx, row.Partition, row.RequestOffset, func(e events.Envelope) bool { return e.ID == env.ID })
	if err != nil {
		return err
	}
	if !found {
		envs := []events.Envelope{env}
		if row.Attempt > 0 { // the run had started: the history names who ends it (a rejection never started)
			resumed, err := events.New(row.TicketID, row.RunID, a.actor, &events.RunResumedData{Owner: a.cfg.InstanceID,
				PreviousOwner: row.PreviousOwner, Step: row.Step, Iteration: row.Iteration})
			if err != nil {
				return err
			}
			envs = []events.Envelope{resumed, env}
		}
		if _, err := ap.Append(ctx, envs...); err != nil {
			return err
		}
	}
	a.log.Info("stored terminal event confirmed", "run_id", row.RunID, "type", env.Type, "already_in_log", found)
	return a.store.FinishTerminal(ctx, row.RunID, row.TicketID)
}

func ciIteration(e events.Envelope) int {
	if p, err := e.Decode(); err == nil {
		if ci, ok := p.(*events.CIResultData); ok {
			return ci.Iteration
		}
	}
	return -1
}
