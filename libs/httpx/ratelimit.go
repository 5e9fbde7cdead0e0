package httpx

import (
	"math"
	"sync"
	"time"
)

// RateLimiter is a token bucket per key (a user, a client IP): each key may pass rate times
// a second on average, burst at once. It lives in the memory of one replica, so with N
// replicas behind a load balancer a key gets up to N times the rate; that bounds abuse
// without a shared store. A rate of 0 or less disables the limit.
type RateLimiter struct {
	rate  float64
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxBuckets caps the table; beyond it the refilled buckets are swept at once.
const maxBuckets = 100_000

// NewRateLimiter returns a limiter of rate tokens a second and burst at once.
func NewRateLimiter(rate float64, burst int) *RateLimiter {
	return &RateLimiter{rate: rate, burst: float64(burst), buckets: map[string]*bucket{}}
}

// Take spends one token of key's bucket at now; when there is none it returns how long
// until one is available.
func (l *RateLimiter) Take(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	if l.rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b, found := l.buckets[key]
	if !found {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
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
// most once a minute unless the table outgrows maxBuckets, so memory follows the active
// keys, not every key ever seen.
func (l *RateLimiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute && len(l.buckets) <= maxBuckets {
		return
	}
	l.swept = now
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for key, b := range l.buckets {
		if now.Sub(b.at) > full {
			delete(l.buckets, key)
		}
	}
}
