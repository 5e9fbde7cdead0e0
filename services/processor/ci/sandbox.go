package ci

import (
	"context"
	"time"
)

// Sandbox runs one CI command confined. Implementations (host process, bubblewrap,
// Kubernetes Job) are chosen by TICKETFLOW_CI_SANDBOX; all of them stream lines through
// onLine with the same batching contract as Run, honour spec.Timeout and ctx, and leave no
// process of the command alive when Run returns.
type Sandbox interface {
	// Name is what the run's log reports ("bwrap", "kubernetes", "none").
	Name() string
	Run(ctx context.Context, spec Spec, onLine LineFunc) (Result, error)
}

// Limits bound what one CI execution may consume; zero means the implementation's default.
type Limits struct {
	// Processes bounds the processes and threads the command may have at once.
	Processes int
	// MemoryBytes bounds the command's memory.
	MemoryBytes int64
	// CPUTime bounds the CPU time the command may use.
	CPUTime time.Duration
}

// Host runs the command as a plain child process of the processor (TICKETFLOW_CI_SANDBOX=none):
// its own process group and a minimal environment, nothing more. It is for trusted setups
// only.
type Host struct{}

// Name implements Sandbox.
func (Host) Name() string { return "none" }

// Run implements Sandbox.
func (Host) Run(ctx context.Context, spec Spec, onLine LineFunc) (Result, error) {
	return Run(ctx, spec, onLine)
}
