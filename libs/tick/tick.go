// Package tick runs a function periodically for as long as a context lives: keep-alive pings,
// polls for a condition, gauges sampled while a load runs.
package tick

import (
	"context"
	"time"
)

// Every calls fn every d, the first time d after the call, until ctx is done or fn returns
// false. It blocks: run it in its own goroutine.
func Every(ctx context.Context, d time.Duration, fn func() bool) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !fn() {
			return
		}
	}
}
