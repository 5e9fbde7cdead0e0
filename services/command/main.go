// Command command serves ticketflow's HTTP API: writes append events, reads use projections.
package main

import (
	"context"
	"errors"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/platform"
	"github.com/ticketflow/ticketflow/services/command/app"
)

func main() {
	platform.Main("command", func(_ context.Context, base *platform.Base) (platform.Service, error) {
		cfg, err := config.Load[app.Config]()
		if err != nil {
			return platform.Service{}, err
		}
		if base.Verifier == nil {
			return platform.Service{}, errors.New("TICKETFLOW_JWT_SECRET is required")
		}
		api, err := app.New(cfg, app.Deps{Log: base.Log, DB: base.DB, Producer: base.Producer, Verifier: base.Verifier, Kafka: base.Config.Kafka})
		if err != nil {
			return platform.Service{}, err
		}
		return platform.Service{Mount: api.Mount, Live: api.LiveChecks()}, nil
	})
}
