// Command processor runs the ticket workflow for every accepted run.
package main

import (
	"context"
	"errors"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/platform"
	"github.com/ticketflow/ticketflow/services/processor/app"
	// TICKETFLOW_CI_SANDBOX=kubernetes: CI runs as Jobs in the cluster.
	_ "github.com/ticketflow/ticketflow/services/processor/ci/kubesandbox"
)

func main() {
	platform.Main("processor", func(_ context.Context, base *platform.Base) (platform.Service, error) {
		cfg, err := config.Load[app.Config]()
		if err != nil {
			return platform.Service{}, err
		}
		proc, err := app.New(cfg, app.Deps{Log: base.Log, DB: base.DB, Kafka: base.Config.Kafka, Producer: base.Producer, Registry: base.Registry,
			Secrets: app.ConfiguredSecrets(base.Config.Auth.JWTSecret, base.Config.Postgres.URL)})
		if err != nil {
			return platform.Service{}, err
		}
		return platform.Service{Run: proc.Run, Checks: map[string]httpx.Check{"consumer": func(context.Context) error {
			select {
			case <-proc.Running():
				return nil
			default:
				return errors.New("router not running yet")
			}
		}}}, nil
	})
}
