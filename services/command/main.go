// Command command serves ticketflow's HTTP API: writes append events, reads use projections.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/logging"
	"github.com/ticketflow/ticketflow/libs/platform"
	"github.com/ticketflow/ticketflow/services/command/app"
)

func main() {
	log := logging.Setup()
	if err := run(log.With("service", "command")); err != nil {
		log.Error("command service stopped", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pcfg, err := config.Load[platform.Config]()
	if err != nil {
		return err
	}
	cfg, err := config.Load[app.Config]()
	if err != nil {
		return err
	}
	base, err := platform.Open(ctx, pcfg, log)
	if err != nil {
		return err
	}
	defer base.Close()
	if base.Verifier == nil {
		return errors.New("TICKETFLOW_JWT_SECRET is required")
	}
	web := httpx.NewApp(log, pcfg.HTTP.AllowedOrigins)
	httpx.MountOps(web, base.Registry, base.Checks())
	app.New(cfg, app.Deps{Log: log, DB: base.DB, Producer: base.Producer, Verifier: base.Verifier}).Mount(web)
	return platform.Serve(ctx, web, pcfg.HTTP.Addr, log)
}
