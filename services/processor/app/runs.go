package app

import (
	"context"
	"errors"
	"time"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/tick"
)

// runAppender appends a run's events through its own producer, with the test hooks around.
type runAppender struct {
	a     *Application
	runID string
	p     Producer
	// opened is when this driver took the run on: its run duration counts from there.
	opened time.Time
}

// openRun opens the run's producer, fencing any earlier one.
func (a *Application) openRun(ctx context.Context, runID string) (*runAppender, error) {
	p, err := a.producers.Open(ctx, runID)
	if err != nil {
		return nil, err
	}
	return &runAppender{a: a, runID: runID, p: p, opened: time.Now()}, nil
}

func (r *runAppender) Append(ctx context.Context, envs ...events.Envelope) ([]events.Position, error) {
	if h := r.a.hooks.BeforeAppend; h != nil {
		h(r.runID, envs)
	}
	pos, err := r.p.Append(ctx, envs...)
	if h := r.a.hooks.AfterAppend; h != nil {
		h(r.runID, err)
	}
	return pos, err
}

func (r *runAppender) Close() { r.p.Close() }

// superviseLeases renews the leases of local runs, stops the drivers of runs taken over
// meanwhile, and takes over runs nobody drives (up to this processor's share).
func (a *Application) superviseLeases(ctx context.Context) {
	if h := a.hooks.BeforeSupervise; h != nil {
		h()
	}
	if err := a.store.Heartbeat(ctx, a.cfg.Lease); err != nil && ctx.Err() == nil {
		a.log.Warn("heartbeat", "err", err)
	}
	a.mu.Lock()
	local := make([]string, 0, len(a.local))
	for id := range a.local {
		local = append(local, id)
	}
	a.mu.Unlock()
	if len(local) > 0 {
		kept, err := a.store.RenewLeases(ctx, a.cfg.Lease, local)
		if err != nil && ctx.Err() == nil {
			a.log.Warn("renew leases", "err", err)
		}
		if err == nil {
			a.stopLost(local, kept)
		}
	}
	a.markSurplus(ctx, local)
	claimed, err := a.store.ClaimRuns(ctx, a.cfg.Lease, local)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("claim runs", "err", err)
		}
		return
	}
	for _, id := range claimed {
		a.startDriver(ctx, id)
	}
}

// markSurplus picks the local runs to hand over at their next step boundary, so that a
// processor that joined (or one left with few runs) takes load from one holding more than
// its share, instead of waiting for new requests: runs last minutes, and without this the
// first processors to start would keep the backlog they accepted alone.
func (a *Application) markSurplus(ctx context.Context, local []string) {
	if len(local) == 0 {
		return
	}
	n, err := a.store.Surplus(ctx, a.cfg.Lease)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("compute surplus runs", "err", err)
		}
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	n -= len(a.handOver) // already marked, not yet at a boundary
	for _, id := range local {
		if n <= 0 {
			break
		}
		if _, driving := a.local[id]; driving && !a.handOver[id] {
			a.handOver[id] = true
			n--
		}
	}
}

// handingOver reports whether runID was marked to be handed over.
func (a *Application) handingOver(runID string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.handOver[runID]
}

// stopLost cancels the drivers of runs another processor took over while this one was not
// renewing (paused or stalled): their work dirs are this instance's, but their steps, child
// processes and LLM calls are wasted work for a run they can no longer append to.
func (a *Application) stopLost(local, kept []string) {
	still := make(map[string]bool, len(kept))
	for _, id := range kept {
		still[id] = true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range local {
		if cancel, ok := a.local[id]; ok && !still[id] {
			a.log.Warn("run taken over by another processor: stopping its driver here", "run_id", id)
			cancel()
		}
	}
}

// startDriver drives a run in the background unless this process already does.
func (a *Application) startDriver(ctx context.Context, runID string) {
	a.mu.Lock()
	if _, ok := a.local[runID]; ok {
		a.mu.Unlock()
		return
	}
	runCtx, cancel := context.WithCancel(ctx)
	a.local[runID] = cancel
	a.mu.Unlock()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer func() {
			a.mu.Lock()
			delete(a.local, runID)
			delete(a.handOver, runID)
			a.mu.Unlock()
			cancel()
		}()
		select {
		case a.sem <- struct{}{}:
		case <-runCtx.Done():
			return
		}
		defer func() { <-a.sem }()
		err := a.drive(runCtx, runID)
		switch {
		case err == nil, runCtx.Err() != nil:
		case errors.Is(err, errHandedOver):
			a.log.Info("run handed over to a processor under its share", "run_id", runID)
		case lostRun(err):
			a.log.Warn("run taken over by another processor: this one stops driving it", "run_id", runID, "err", err)
		default:
			a.log.Error("run interrupted; it will be resumed", "run_id", runID, "err", err)
		}
	}()
}

// watchCancel returns a context cancelled when the run's cancellation is requested (seen in
// PostgreSQL, so a request handled by another replica reaches the owner too).
func (a *Application) watchCancel(ctx context.Context, runID string) (context.Context, func()) {
	stepCtx, cancel := context.WithCancel(ctx)
	go tick.Every(stepCtx, 250*time.Millisecond, func() bool {
		if a.cancelRequested(stepCtx, runID) != "" {
			cancel()
			return false
		}
		return true
	})
	return stepCtx, cancel
}

func (a *Application) cancelRequested(ctx context.Context, runID string) string {
	return a.store.CancelRequested(ctx, runID)
}

// lockTicket serialises, within this process, the drivers of one ticket: they share the
// ticket's work dir, and a driver that lost its run may still be unwinding in it when the
// ticket's next run starts here.
func (a *Application) lockTicket(ctx context.Context, ticketID string) (func(), error) {
	a.mu.Lock()
	l, ok := a.ticketLocks[ticketID]
	if !ok {
		l = &ticketLock{ch: make(chan struct{}, 1)}
		a.ticketLocks[ticketID] = l
	}
	l.refs++
	a.mu.Unlock()
	drop := func() {
		a.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(a.ticketLocks, ticketID)
		}
		a.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; drop() }, nil
	case <-ctx.Done():
		drop()
		return nil, ctx.Err()
	}
}

type ticketLock struct {
	ch   chan struct{}
	refs int
}
