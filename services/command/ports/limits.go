package ports

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/httpx"
)

// rateLimiter is a token bucket per subject: each user may write rate times a second on
// average, burst at once. It lives in the memory of one replica, so with N replicas behind
// a load balancer a user gets up to N times the rate; that bounds abuse without a shared store.
type rateLimiter struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newRateLimiter(rate float64, burst int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), now: time.Now, buckets: map[string]*bucket{}}
}

// take spends one token of subject's bucket; when there is none it returns how long until
// one is available.
func (l *rateLimiter) take(subject string) (ok bool, retryAfter time.Duration) {
	if l.rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	b, found := l.buckets[subject]
	if !found {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[subject] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// sweep drops the buckets that have refilled completely (they behave like new ones), at
// most once a minute, so memory follows the active users, not every user ever seen.
func (l *rateLimiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for subject, b := range l.buckets {
		if now.Sub(b.at) > full {
			delete(l.buckets, subject)
		}
	}
}

// limitWrites answers 429 rate_limited, with Retry-After in whole seconds, once the
// caller's bucket is empty.
func (h *HTTP) limitWrites(c *fiber.Ctx) error {
	ok, wait := h.limiter.take(httpx.Claims(c).Subject())
	if ok {
		return c.Next()
	}
	secs := int(math.Ceil(wait.Seconds()))
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(max(secs, 1)))
	return httpx.Errorf(fiber.StatusTooManyRequests, "rate_limited", "too many writes; retry in %d s", max(secs, 1))
}
