// Command projector folds the event log into PostgreSQL tables.
package main

import (
	"context"
	"errors"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/platform"
	"github.com/ticketflow/ticketflow/services/projector/app"
)

func main() {
	platform.Main("projector", func(_ context.Context, base *platform.Base) (platform.Service, error) {
		cfg, err := config.Load[app.Config]()
		if err != nil {
			return platform.Service{}, err
		}
		proj := app.New(cfg, app.Deps{Log: base.Log, DB: base.DB, Kafka: base.Config.Kafka, Registry: base.Registry})
		return platform.Service{Run: proj.Run, Checks: map[string]httpx.Check{"consumer": func(context.Context) error {
			if !proj.Ready() {
				return errors.New("not yet assigned partitions")
			}
			return nil
		}}}, nil
	})
}
