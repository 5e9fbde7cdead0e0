package kubesandbox

import (
	"context"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/services/processor/ci"
)

// Linking this package makes TICKETFLOW_CI_SANDBOX=kubernetes available (ci.Select).
func init() {
	ci.NewKubernetes = func(_ context.Context, _ ci.Options) (ci.Sandbox, error) {
		cfg, err := config.Load[Config]()
		if err != nil {
			return nil, err
		}
		return New(cfg)
	}
}
