package httpx

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Deadlines gives every request it handles a context that ends after a fixed timeout, and
// keeps the start times of the requests in flight so a liveness probe can tell a process
// whose handlers stopped honouring their deadline (wedged) from a busy one.
type Deadlines struct {
	timeout time.Duration
	mu      sync.Mutex
	next    uint64
	started map[uint64]time.Time
	total   atomic.Int64
}

// NewDeadlines returns a tracker giving each request timeout.
func NewDeadlines(timeout time.Duration) *Deadlines {
	return &Deadlines{timeout: timeout, started: map[uint64]time.Time{}}
}

// Handler is the middleware: the request's UserContext (derived from the one already set,
// e.g. the process's request context that shutdown cancels) ends after the timeout.
func (d *Deadlines) Handler() fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx, cancel := context.WithTimeout(c.UserContext(), d.timeout)
		defer cancel()
		id := d.enter()
		defer d.leave(id)
		c.SetUserContext(ctx)
		return c.Next()
	}
}

func (d *Deadlines) enter() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next++
	d.started[d.next] = time.Now()
	d.total.Add(1)
	return d.next
}

func (d *Deadlines) leave(id uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.started, id)
}

// Oldest is the age of the oldest request still in flight (0 when none).
func (d *Deadlines) Oldest() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	var oldest time.Duration
	now := time.Now()
	for _, t := range d.started {
		oldest = max(oldest, now.Sub(t))
	}
	return oldest
}

// InFlight is the number of requests in flight.
func (d *Deadlines) InFlight() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.started)
}

// Check is a liveness check: it fails when a request has been in flight for more than
// factor times its deadline, i.e. its handler ignores its context (blocked on a lock, a
// connection or a peer with no deadline) and the process needs a restart.
func (d *Deadlines) Check(factor int) Check {
	limit := time.Duration(factor) * d.timeout
	return func(context.Context) error {
		if age := d.Oldest(); age > limit {
			return fmt.Errorf("a request has been running for %s, more than %d× its %s deadline", age.Round(time.Second), factor, d.timeout)
		}
		return nil
	}
}
