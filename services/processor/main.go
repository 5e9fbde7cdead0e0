// Command processor runs the ticket workflow for every accepted run.
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
	"github.com/ticketflow/ticketflow/services/processor/app"
)

func main() {
	log := logging.Setup()
	if err := run(log.With("service", "processor")); err != nil {
		log.Error("processor stopped", "err", err)
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
	proc, err := app.New(cfg, app.Deps{Log: log, DB: base.DB, Kafka: pcfg.Kafka, Producer: base.Producer, Registry: base.Registry})
	if err != nil {
		return err
	}
	checks := base.Checks()
	checks["consumer"] = func(context.Context) error {
		select {
		case <-proc.Running():
			return nil
		default:
			return errors.New("router not running yet")
		}
	}
	web := httpx.NewApp(log, nil)
	httpx.MountOps(web, base.Registry, checks)
	errc := make(chan error, 2)
	go func() { errc <- proc.Run(ctx) }()
	go func() { errc <- platform.Serve(ctx, web, pcfg.HTTP.Addr, log) }()
	err = <-errc
	stop()
	return err
}
