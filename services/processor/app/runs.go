package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"syscall"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
)

// runTransactionalID is the Kafka transactional id of a run's appends: one per run, so the
// processor that takes a run over fences exactly that run's previous owner.
func runTransactionalID(runID string) string { return "ticketflow-run-" + runID }

// runAppender appends a run's events, each call one Kafka transaction.
type runAppender struct {
	p     *Processor
	runID string
	tp    *kafka.TxnProducer
}

// openRun creates the run's transactional producer, fencing any earlier one.
func (p *Processor) openRun(ctx context.Context, runID string) (*runAppender, error) {
	tp, err := kafka.NewTxnProducer(ctx, p.deps.Kafka, runTransactionalID(runID))
	if err != nil {
		return nil, err
	}
	return &runAppender{p: p, runID: runID, tp: tp}, nil
}

func (a *runAppender) Append(ctx context.Context, envs ...events.Envelope) ([]events.Position, error) {
	if h := a.p.hooks.beforeAppend; h != nil {
		h(a.runID, envs)
	}
	pos, err := a.tp.Append(ctx, envs...)
	if h := a.p.hooks.afterAppend; h != nil {
		h(a.runID, err)
	}
	return pos, err
}

func (a *runAppender) Close() { a.tp.Close() }

// testHooks let in-package tests pause a processor the way SIGSTOP would.
type testHooks struct {
	// beforeAppend runs before each append of a run's events; blocking in it holds the
	// driver just before it writes.
	beforeAppend func(runID string, envs []events.Envelope)
	// afterAppend sees each append's result.
	afterAppend func(runID string, err error)
	// beforeSupervise runs before each lease renewal and claim round.
	beforeSupervise func()
	// skipRelease makes a shutdown behave like a crash: the leases are left to expire.
	skipRelease bool
}

// lockTicket serialises, within this process, the drivers of one ticket: they share the
// ticket's work dir, and a driver that lost its run may still be unwinding in it when the
// ticket's next run starts here.
func (p *Processor) lockTicket(ctx context.Context, ticketID string) (func(), error) {
	p.mu.Lock()
	l, ok := p.ticketLocks[ticketID]
	if !ok {
		l = &ticketLock{ch: make(chan struct{}, 1)}
		p.ticketLocks[ticketID] = l
	}
	l.refs++
	p.mu.Unlock()
	drop := func() {
		p.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(p.ticketLocks, ticketID)
		}
		p.mu.Unlock()
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

var unsafePathChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// instanceWorkDir is this processor's own part of the work root: work dirs are per (instance,
// ticket), so a processor that took a run over never works in the directory of the one it
// fenced, which may still be running there (paused, then resumed).
func instanceWorkDir(root, instance string) string {
	if root == "" {
		root = filepath.Join(os.TempDir(), "ticketflow-work")
	}
	name := unsafePathChars.ReplaceAllString(instance, "_")
	if name == "" || name[0] == '.' {
		name = "i" + name
	}
	return filepath.Join(root, name)
}

// lockInstanceDir takes an exclusive flock on the instance's work dir for the life of the
// process: a second process started with the same instance id on this host (and so the same
// work dirs) refuses to start instead of sharing them.
func lockInstanceDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("work dir %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".ticketflow-instance.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("work dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("work dir %s is in use by another processor with the same TICKETFLOW_INSTANCE_ID: %w", dir, err)
	}
	return f, nil
}
