package platform

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/logging"
	"github.com/ticketflow/ticketflow/libs/telemetry"
)

// Service is what one service adds to the shared process: routes, background work and the
// readiness checks of that work. Every field is optional.
type Service struct {
	Mount  func(*fiber.App)
	Run    func(context.Context) error
	Checks map[string]httpx.Check
	// Live are liveness checks added to /healthz (see httpx.MountOpsLive).
	Live map[string]httpx.Check
}

// Main runs a service process: slog, SIGINT/SIGTERM, the shared configuration and
// connections, then build's service beside /healthz, /readyz and /metrics, until a signal or
// an error. It exits with status 1 and the error logged when anything fails. opts choose what
// the shared connections are (see Open).
func Main(name string, build func(ctx context.Context, base *Base) (Service, error), opts ...Option) {
	log := logging.Setup().With("service", name)
	shutdownTracing, err := telemetry.Setup(context.Background(), name)
	if err != nil {
		log.Error(name+" stopped", "err", err)
		os.Exit(1)
	}
	err = run(name, log, build, opts...)
	flushTracing(shutdownTracing, log)
	if err != nil {
		log.Error(name+" stopped", "err", err)
		os.Exit(1)
	}
}

// flushTracing exports the spans still buffered, within a bound: a stopping process must not
// hang on an unreachable trace backend.
func flushTracing(shutdown func(context.Context) error, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		log.Warn("flushing spans", "err", err)
	}
}

func run(name string, log *slog.Logger, build func(context.Context, *Base) (Service, error), opts ...Option) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load[Config]()
	if err != nil {
		return err
	}
	return runUntil(ctx, name, cfg, log, build, opts...)
}

// runUntil is run without the signal handling: it returns once ctx ends (after the bounded
// shutdown) or something fails.
func runUntil(ctx context.Context, name string, cfg Config, log *slog.Logger, build func(context.Context, *Base) (Service, error), opts ...Option) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	if _, err := telemetry.ServeProfiles(ctx, cfg.ProfileAddr, log); err != nil {
		return err
	}
	base, err := Open(ctx, cfg, log, opts...)
	if err != nil {
		return err
	}
	defer base.Close()
	svc, err := build(ctx, base)
	if err != nil {
		return err
	}
	checks := base.Checks()
	for name, check := range svc.Checks {
		checks[name] = check
	}
	live := base.Liveness()
	for name, check := range svc.Live {
		live[name] = check
	}
	web := httpx.NewApp(log, cfg.HTTP.AllowedOrigins, httpx.WithObservability(name, base.Registry, log), httpx.WithTrustedProxies(cfg.HTTP.TrustedProxies))
	cancelRequests := RequestContexts(web)
	httpx.MountOpsLive(web, base.Registry, checks, live)
	if svc.Mount != nil {
		svc.Mount(web)
	}
	errc := make(chan error, 2)
	if svc.Run != nil {
		go func() {
			if err := svc.Run(ctx); err != nil {
				errc <- fmt.Errorf("run: %w", err)
				return
			}
			errc <- nil
		}()
	}
	go func() { errc <- ServeWithin(ctx, web, cfg.HTTP.Addr, log, cfg.ShutdownTimeout, cancelRequests) }()
	err = <-errc
	stop()
	return err
}
