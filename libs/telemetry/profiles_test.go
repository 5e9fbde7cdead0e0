package telemetry_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/ticketflow/ticketflow/libs/telemetry"
)

// Profiles are off without an address; with one they are served until the context ends.
func TestServeProfiles(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if addr, err := telemetry.ServeProfiles(context.Background(), "", log); addr != "" || err != nil {
		t.Fatalf("no address served %q, %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := telemetry.ServeProfiles(ctx, "127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile:") {
		t.Fatalf("goroutine profile: %d %.200s", resp.StatusCode, body)
	}
	cancel()
	for range 100 {
		if _, err = http.Get("http://" + addr + "/debug/pprof/"); err != nil {
			return
		}
	}
	t.Fatal("still served after the context ended")
}
