package platform

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/kafka/kafkatest"
	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
	"github.com/ticketflow/ticketflow/libs/proctest"
)

func get(addr, path string) (int, error) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + path)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// A stop returns within the shutdown timeout even while a handler hangs ignoring its
// context, and the handlers that do listen to their context are told to stop.
func TestServeStopsDespiteAHungHandler(t *testing.T) {
	app := httpx.NewApp(slog.New(slog.DiscardHandler), nil)
	cancelRequests := RequestContexts(app)
	never := make(chan struct{})
	t.Cleanup(func() { close(never) })
	cancelled := make(chan struct{})
	app.Get("/hang", func(c *fiber.Ctx) error { <-never; return nil })
	app.Get("/listens", func(c *fiber.Ctx) error {
		<-c.UserContext().Done()
		close(cancelled)
		<-never
		return nil
	})
	addr := proctest.FreeAddr(t)
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- ServeWithin(ctx, app, addr, slog.New(slog.DiscardHandler), 300*time.Millisecond, cancelRequests)
	}()
	waitUp(t, addr)
	go func() { _, _ = get(addr, "/hang") }()
	go func() { _, _ = get(addr, "/listens") }()
	time.Sleep(100 * time.Millisecond)
	if d := stopAndWait(t, stop, served, "Serve", 5*time.Second); d > 2*time.Second {
		t.Fatalf("stop took %v with a 300ms shutdown timeout", d)
	}
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("the in-flight request's context was not cancelled at shutdown")
	}
}

// stopAndWait calls stop and waits, at most wait, for what stopped to return nil on done; it
// returns how long that took.
func stopAndWait(t *testing.T, stop func(), done <-chan error, what string, wait time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	stop()
	proctest.Returned(t, done, wait, what)
	return time.Since(start)
}

func waitUp(t *testing.T, addr string) {
	t.Helper()
	proctest.Eventually(t, 10*time.Second, 10*time.Millisecond, addr+" listening", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// The whole process path with real PostgreSQL and Kafka: a handler holds the only pool
// connection and hangs. /healthz fails once the pool has handed out nothing for PoolStall,
// and a stop still
// returns within the shutdown timeout plus the bounded close, though pgxpool.Close would
// wait for that connection forever.
func TestRunStopsWithAHungHandlerHoldingTheDatabase(t *testing.T) {
	broker := kafkatest.Start(t, 1)
	addr := proctest.FreeAddr(t)
	cfg := Config{
		HTTP:            config.HTTP{Addr: addr},
		Kafka:           broker.Config,
		Postgres:        config.Postgres{URL: pgtest.NewDatabase(t), MaxConns: 1},
		StartupTimeout:  20 * time.Second,
		ShutdownTimeout: 300 * time.Millisecond,
		PoolStall:       time.Second,
	}
	never := make(chan struct{})
	t.Cleanup(func() { close(never) })
	held := make(chan struct{})
	build := func(_ context.Context, base *Base) (Service, error) {
		return Service{Mount: func(app *fiber.App) {
			app.Get("/hold", func(c *fiber.Ctx) error {
				conn, err := base.DB.Acquire(context.Background())
				if err != nil {
					return err
				}
				close(held)
				<-never // ignores its context: a wedged handler
				conn.Release()
				return nil
			})
		}}, nil
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runUntil(ctx, "test", cfg, slog.New(slog.DiscardHandler), build) }()
	waitUp(t, addr)
	if code, err := get(addr, "/healthz"); err != nil || code != 200 {
		t.Fatalf("healthz before: %d %v", code, err)
	}
	go func() { _, _ = get(addr, "/hold") }()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never got its connection")
	}
	// Full but only just: busy, not wedged.
	if code, err := get(addr, "/healthz"); err != nil || code != 200 {
		t.Fatalf("healthz with the pool just filled: %d %v, want 200", code, err)
	}
	time.Sleep(cfg.PoolStall + 200*time.Millisecond)
	if code, err := get(addr, "/healthz"); err != nil || code != 503 {
		t.Fatalf("healthz with the pool wedged: %d %v, want 503", code, err)
	}
	if d := stopAndWait(t, stop, done, "run", 15*time.Second); d > cfg.ShutdownTimeout+closeBound+2*time.Second {
		t.Fatalf("stop took %v", d)
	}
}

// A service with an optional database and no producer (the notifier) starts without
// PostgreSQL: an unreachable database is given up within the startup bound, a database it
// does not want is never dialled, and PostgreSQL is no readiness check of it.
func TestOpenWithOptionalDatabaseAndNoProducer(t *testing.T) {
	broker := kafkatest.Start(t, 1)
	cfg := Config{
		Kafka:          broker.Config,
		Postgres:       config.Postgres{URL: "postgres://postgres@127.0.0.1:1/none?sslmode=disable"},
		StartupTimeout: 2 * time.Second,
	}
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name string
		use  func() (bool, error)
	}{
		{"unreachable", nil},
		{"not wanted", func() (bool, error) { return false, nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			base, err := Open(context.Background(), cfg, log, OptionalDatabase(tc.use), WithoutProducer())
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer base.Close()
			if d := time.Since(start); d > cfg.StartupTimeout+time.Second {
				t.Fatalf("Open took %v", d)
			}
			if base.DB != nil || base.Producer != nil || base.Kafka == nil {
				t.Fatalf("DB %v, producer %v, kafka %v: want only kafka", base.DB, base.Producer, base.Kafka)
			}
			checks := base.Checks()
			if _, ok := checks["postgres"]; ok || len(checks) != 1 {
				t.Fatalf("readiness checks %v, want kafka only", checks)
			}
			if live := base.Liveness(); len(live) != 0 {
				t.Fatalf("liveness checks %v, want none", live)
			}
		})
	}
	_, err := Open(context.Background(), cfg, log, OptionalDatabase(func() (bool, error) { return false, errors.New("bad setting") }))
	if err == nil || !strings.Contains(err.Error(), "bad setting") {
		t.Fatalf("Open with a failing setting: %v", err)
	}
}
