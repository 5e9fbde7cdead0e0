package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/platform"
	"github.com/ticketflow/ticketflow/libs/telemetry"
	"github.com/ticketflow/ticketflow/services/command/app"
	"github.com/ticketflow/ticketflow/services/command/command"
	"github.com/ticketflow/ticketflow/services/notifier/notifier"
	"github.com/ticketflow/ticketflow/services/processor/processor"
	"github.com/ticketflow/ticketflow/services/projector/projector"
)

// devConfig is what only `ticketflow dev` reads.
type devConfig struct {
	DataDir           string `env:"TICKETFLOW_DATA_DIR" envDefault:".data"`
	EmbeddedKafkaAddr string `env:"TICKETFLOW_EMBEDDED_KAFKA_ADDR" envDefault:"127.0.0.1:9092"`
	WebDir            string `env:"TICKETFLOW_WEB_DIR" envDefault:"frontend/dist"`
	// Broker is how the embedded broker makes acknowledged appends durable (the same
	// variables as `ticketflow broker`).
	Broker kafka.Persistence
	// Demo creates the ticket "abc123" (the brief's example id) on first start.
	Demo bool `env:"TICKETFLOW_DEMO" envDefault:"true"`
}

const demoTicketID = "abc123"

func dataDir() string {
	if d := os.Getenv("TICKETFLOW_DATA_DIR"); d != "" {
		return d
	}
	return ".data"
}

func runDev([]string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runDevUntil(ctx)
}

// runDevUntil is `ticketflow dev` until ctx ends (tests run it in-process).
func runDevUntil(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	log := slog.Default()
	// The four services share one tracer provider (service.name ticketflow unless
	// OTEL_SERVICE_NAME says otherwise); spans are exported only with OTEL_EXPORTER_OTLP_ENDPOINT.
	shutdownTracing, err := telemetry.Setup(ctx, "ticketflow")
	if err != nil {
		return err
	}
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(flushCtx); err != nil {
			log.Warn("flushing spans", "err", err)
		}
	}()
	if os.Getenv("TICKETFLOW_INSTANCE_ID") == "" {
		// One dev process per data dir: a restart is the same member, so it takes its
		// partitions and runs back at once (static group membership, run leases).
		_ = os.Setenv("TICKETFLOW_INSTANCE_ID", "dev")
	}
	if os.Getenv("TICKETFLOW_FILE_REPO_ROOT") == "" {
		// Local repositories are the point of a dev stack: file:// ones under the data dir's
		// repos/, never the work dir's clones (command and processor both read it).
		root, err := filepath.Abs(filepath.Join(dataDir(), "repos"))
		if err == nil {
			err = os.MkdirAll(root, 0o755)
		}
		if err != nil {
			return fmt.Errorf("file repository root: %w", err)
		}
		_ = os.Setenv("TICKETFLOW_FILE_REPO_ROOT", root)
	}

	dcfg, err := config.Load[devConfig]()
	if err != nil {
		return err
	}
	pcfg, err := config.Load[platform.Config]()
	if err != nil {
		return err
	}
	if _, err := telemetry.ServeProfiles(ctx, pcfg.ProfileAddr, log); err != nil {
		return err
	}
	if err := os.MkdirAll(dcfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir %s: %w", dcfg.DataDir, err)
	}
	if pcfg.Auth.JWTSecret == "" {
		if pcfg.Auth.JWTSecret, err = devSecret(dcfg.DataDir); err != nil {
			return err
		}
	}
	if len(pcfg.Kafka.Brokers) == 0 {
		emb, err := kafka.StartEmbedded(dcfg.EmbeddedKafkaAddr, filepath.Join(dcfg.DataDir, "kafka"), int(pcfg.Kafka.Partitions), dcfg.Broker)
		if err != nil {
			return fmt.Errorf("%w (is another ticketflow running? set TICKETFLOW_EMBEDDED_KAFKA_ADDR)", err)
		}
		defer emb.Close()
		pcfg.Kafka.Brokers = emb.Addrs()
		log.Info("embedded Kafka broker started", "addr", strings.Join(emb.Addrs(), ","), "data", filepath.Join(dcfg.DataDir, "kafka"))
	}
	base, err := platform.Open(ctx, pcfg, log)
	if err != nil {
		return err
	}
	defer base.Close()

	// The projector and the processor get pools of their own, as their processes would.
	projBase, err := base.WithOwnPool(ctx, "projector")
	if err != nil {
		return err
	}
	procBase, err := base.WithOwnPool(ctx, "processor")
	if err != nil {
		return err
	}
	proj, err := projector.Build(ctx, projBase)
	if err != nil {
		return err
	}
	proc, err := processor.Build(ctx, procBase)
	if err != nil {
		return err
	}
	notif, err := notifier.Build(ctx, base)
	if err != nil {
		return err
	}

	web := httpx.NewApp(log, pcfg.HTTP.AllowedOrigins, httpx.WithObservability("ticketflow", base.Registry, log), httpx.WithTrustedProxies(pcfg.HTTP.TrustedProxies))
	checks := base.Checks()
	checks["projector"] = proj.Checks["consumer"]
	checks["notifier"] = notif.Checks["notifier"]
	checks["processor"] = proc.Checks["consumer"]
	cancelRequests := platform.RequestContexts(web)
	cmd, err := command.Open(ctx, base)
	if err != nil {
		return err
	}
	defer cmd.Close()
	api := cmd.Service()
	live := base.Liveness()
	for name, check := range api.Live {
		live[name] = check
	}
	httpx.MountOpsLive(web, base.Registry, checks, live)
	api.Mount(web)
	notif.Mount(web)
	webApp := httpx.MountWebApp(web, dcfg.WebDir)

	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for name, run := range map[string]func(context.Context) error{"projector": proj.Run, "processor": proc.Run, "notifier": notif.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := platform.ServeWithin(ctx, web, pcfg.HTTP.Addr, log, pcfg.ShutdownTimeout, cancelRequests); err != nil {
			errc <- err
		}
	}()

	go func() {
		if err := waitReady(ctx, checks); err != nil {
			return
		}
		if dcfg.Demo {
			if err := ensureDemoTicket(ctx, base, cmd.App); err != nil {
				log.Warn("demo ticket", "err", err)
			}
		}
		printBanner(pcfg, dcfg, base.Verifier, webApp)
	}()

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-errc:
		log.Error("stopping", "err", err)
	}
	stop()
	wg.Wait()
	return err
}

func waitReady(ctx context.Context, checks map[string]httpx.Check) error {
	for {
		ok := true
		for _, c := range checks {
			if c(ctx) != nil {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// devSecret keeps one generated JWT secret in the data dir, so tokens survive restarts.
func devSecret(dir string) (string, error) {
	if s, err := readSecret(dir); err == nil {
		return s, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	s := hex.EncodeToString(b)
	if err := os.WriteFile(filepath.Join(dir, "jwt-secret"), []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("store dev JWT secret: %w", err)
	}
	return s, nil
}

func readSecret(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "jwt-secret"))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// ensureDemoTicket creates the demo ticket once, through the command service's use case.
// Its Idempotency-Key is fixed, so even a race with a second start cannot create it twice.
func ensureDemoTicket(ctx context.Context, base *platform.Base, cmd *app.Application) error {
	var exists bool
	if err := base.DB.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tickets WHERE id = $1)`, demoTicketID).Scan(&exists); err != nil || exists {
		return err
	}
	_, err := cmd.CreateTicket(ctx, app.Actor{Subject: "dev"}, app.TicketInput{
		ID:          demoTicketID,
		Title:       "Demo: add a health endpoint",
		Description: "A demo ticket created by `ticketflow dev`. Start it and watch the run live.",
		BaseBranch:  "main", CICommand: "make test",
	}, "demo:"+demoTicketID)
	return err
}

func printBanner(pcfg platform.Config, dcfg devConfig, v *auth.Verifier, webApp bool) {
	token, err := v.Issue("dev", auth.RoleAdmin, 7*24*time.Hour)
	if err != nil {
		return
	}
	addr := pcfg.HTTP.Addr
	host := strings.Replace(addr, "127.0.0.1", "localhost", 1)
	var b strings.Builder
	fmt.Fprintf(&b, "\n  ticketflow is up on http://%s   (Ctrl-C stops it; data in %s)\n\n", host, dcfg.DataDir)
	if webApp {
		fmt.Fprintf(&b, "  Web app (logs you in):\n    http://%s/#access_token=%s\n\n", host, token)
	} else {
		fmt.Fprintf(&b, "  Web app not built (run `make run`, or `cd frontend && npm ci && npm run build`).\n\n")
	}
	fmt.Fprintf(&b, "  Dev token (admin, sub=dev, 7 days):\n    export TOKEN=%s\n\n", token)
	fmt.Fprintf(&b, "  Watch the demo ticket:\n    wscat -c \"ws://%s/ws/tickets/%s?access_token=%s\"\n\n", host, demoTicketID, token)
	fmt.Fprintf(&b, "  Start it (in another terminal):\n    curl -X POST http://%s/api/tickets/processing/start -H \"Content-Type: application/json\" -H \"Authorization: Bearer %s\" -d '{\"ticket_id\": \"%s\"}'\n\n", host, token, demoTicketID)
	fmt.Fprintf(&b, "  Kafka (embedded unless KAFKA_BROKERS): %s   topic %s\n", strings.Join(pcfg.Kafka.Brokers, ","), pcfg.Kafka.Topic)
	fmt.Fprint(os.Stdout, b.String())
}
