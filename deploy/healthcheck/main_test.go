package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/slow":
			time.Sleep(200 * time.Millisecond)
		case r.URL.Path == "/readyz" && !ready.Load():
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	if err := check(ctx, srv.URL+"/readyz", time.Second); err != nil {
		t.Fatalf("ready service: %v", err)
	}
	ready.Store(false)
	err := check(ctx, srv.URL+"/readyz", time.Second)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("unready service: got %v, want a 503 error", err)
	}
	if err := check(ctx, srv.URL+"/slow", 20*time.Millisecond); err == nil {
		t.Fatal("slow service: want a timeout error")
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	url := closed.URL
	closed.Close()
	if err := check(ctx, url, time.Second); err == nil {
		t.Fatal("closed port: want a connection error")
	}
}
