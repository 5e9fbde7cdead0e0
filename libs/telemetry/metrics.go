package telemetry

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c on reg and returns it, or the collector already registered under the
// same descriptors (several apps or pools of one process share a registry). Any other
// registration error is a programming error and panics, as MustRegister does.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// Observe records v on o with ctx's trace id as the exemplar when ctx carries a sampled span,
// so a slow bucket on a dashboard links to a trace of it.
func Observe(ctx context.Context, o prometheus.Observer, v float64) {
	if id := sampledTraceID(ctx); id != "" {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(v, prometheus.Labels{"trace_id": id})
			return
		}
	}
	o.Observe(v)
}
