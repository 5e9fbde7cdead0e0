package tick

import (
	"context"
	"testing"
	"time"
)

func TestEveryStopsWhenFnSaysSo(t *testing.T) {
	calls := 0
	start := time.Now()
	Every(context.Background(), 5*time.Millisecond, func() bool { calls++; return calls < 3 })
	if calls != 3 {
		t.Fatalf("%d calls, want 3", calls)
	}
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Fatalf("3 calls in %s, want one every 5ms", d)
	}
}

func TestEveryStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	calls := make(chan struct{}, 100)
	go func() {
		defer close(done)
		Every(ctx, time.Millisecond, func() bool { calls <- struct{}{}; return true })
	}()
	<-calls
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Every did not return after the context was cancelled")
	}
}
