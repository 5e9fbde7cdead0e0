package main

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestSmoke runs `-quick -smoke` (both servers, every scenario, tiny counts) when
// TICKETFLOW_BENCH_SMOKE=1; not part of make test (it builds Centrifugo once, minutes).
func TestSmoke(t *testing.T) {
	if os.Getenv("TICKETFLOW_BENCH_SMOKE") != "1" {
		t.Skip("set TICKETFLOW_BENCH_SMOKE=1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	o := options{quick: true, smoke: true, reps: 1, scenarios: "c,a,b,d", cache: "../.data/bench-compare", repo: "..",
		dbURL: envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ticketflow?sslmode=disable"), sources: 4}
	if err := run(ctx, o); err != nil {
		t.Fatal(err)
	}
}
