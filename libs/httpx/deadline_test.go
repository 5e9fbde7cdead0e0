package httpx_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/proctest"
)

// A handler that ignores its deadline makes /healthz fail once it has run for 3× the
// deadline; a handler that honours it never does.
func TestHealthzFailsWhenARequestOutlivesItsDeadline(t *testing.T) {
	const deadline = 50 * time.Millisecond
	d := httpx.NewDeadlines(deadline)
	app := httpx.NewApp(slog.New(slog.DiscardHandler), nil)
	httpx.MountOpsLive(app, httpx.NewRegistry(), nil, map[string]httpx.Check{"requests": d.Check(3)})
	release := make(chan struct{})
	app.Get("/polite", d.Handler(), func(c *fiber.Ctx) error {
		<-c.UserContext().Done()
		return c.SendStatus(503)
	})
	app.Get("/wedged", d.Handler(), func(c *fiber.Ctx) error {
		<-release // ignores its context, like a wait on a lock or a pool with no deadline
		return nil
	})
	healthz := func() (int, map[string]any) {
		resp, err := app.Test(httptest.NewRequest("GET", "/healthz", nil), 5000)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		return resp.StatusCode, body
	}

	if resp, err := app.Test(httptest.NewRequest("GET", "/polite", nil), 5000); err != nil || resp.StatusCode != 503 {
		t.Fatalf("polite handler: %v %v", resp, err)
	}
	if code, body := healthz(); code != 200 {
		t.Fatalf("healthz with no request in flight: %d %v", code, body)
	}

	go func() { _, _ = app.Test(httptest.NewRequest("GET", "/wedged", nil), -1) }()
	defer close(release)
	proctest.Eventually(t, 5*time.Second, 5*time.Millisecond, "the handler in flight", func() bool { return d.InFlight() == 1 })
	if code, _ := healthz(); code != 200 {
		t.Fatalf("healthz failed while the request is young: %d", code)
	}
	time.Sleep(4 * deadline)
	code, body := healthz()
	if code != 503 || body["failed"].(map[string]any)["requests"] == nil {
		t.Fatalf("healthz with a wedged request: %d %v, want 503 naming requests", code, body)
	}
}

// A liveness check that hangs cannot hang the probe.
func TestHealthzIsBoundedWhenACheckHangs(t *testing.T) {
	app := httpx.NewApp(slog.New(slog.DiscardHandler), nil)
	httpx.MountOpsLive(app, httpx.NewRegistry(), nil, map[string]httpx.Check{
		"stuck": func(context.Context) error { select {} },
	})
	start := time.Now()
	resp, err := app.Test(httptest.NewRequest("GET", "/healthz", nil), 10000)
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("healthz with a hanging check: %v %v", resp, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("healthz took %v", d)
	}
}
