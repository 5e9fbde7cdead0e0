package ci

import (
	"context"
	"fmt"
)

// Options are what every sandbox implementation may need to know when it is built.
type Options struct {
	// Defaults fill the zero fields of Spec.Limits.
	Defaults Limits
	// WorkRoot is the directory holding the per-ticket work dirs.
	WorkRoot string
	// HostUID is the host uid of the bwrap sandbox when the processor runs as root.
	HostUID int
}

// NewKubernetes builds the Kubernetes sandbox (TICKETFLOW_CI_SANDBOX=kubernetes). The
// kubesandbox package sets it from an init function: a processor binary that does not import
// it has no Kubernetes sandbox.
var NewKubernetes func(ctx context.Context, opts Options) (Sandbox, error)

// Select builds the sandbox TICKETFLOW_CI_SANDBOX names. Unset means bwrap, which must work:
// a processor never falls back to unconfined CI silently; "none" has to be asked for.
func Select(ctx context.Context, name string, opts Options) (Sandbox, error) {
	switch name {
	case "", "bwrap":
		b, err := NewBwrap(ctx, BwrapConfig{HostUID: opts.HostUID, Defaults: opts.Defaults}, opts.WorkRoot)
		if err != nil {
			if name == "" {
				return nil, fmt.Errorf("TICKETFLOW_CI_SANDBOX is unset and the default bwrap sandbox is unavailable: %w", err)
			}
			return nil, fmt.Errorf("TICKETFLOW_CI_SANDBOX=bwrap: %w", err)
		}
		return b, nil
	case "kubernetes":
		if NewKubernetes == nil {
			return nil, fmt.Errorf("TICKETFLOW_CI_SANDBOX=kubernetes: this processor binary was built without the Kubernetes sandbox (import services/processor/ci/kubesandbox)")
		}
		s, err := NewKubernetes(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("TICKETFLOW_CI_SANDBOX=kubernetes: %w", err)
		}
		return s, nil
	case "none":
		return Host{}, nil
	default:
		return nil, fmt.Errorf("TICKETFLOW_CI_SANDBOX=%q: no such sandbox (bwrap, kubernetes, none)", name)
	}
}
