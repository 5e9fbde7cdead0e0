package ports

import (
	"testing"
	"time"
)

func TestRateLimiterPerSubject(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newRateLimiter(2, 3) // 2 per second, 3 at once
	l.now = func() time.Time { return now }
	for i := range 3 {
		if ok, _ := l.take("alice"); !ok {
			t.Fatalf("write %d within the burst refused", i+1)
		}
	}
	ok, wait := l.take("alice")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("fourth write: ok=%v wait=%v, want refused for 500ms", ok, wait)
	}
	if ok, _ := l.take("bob"); !ok {
		t.Fatal("another user is limited by alice's writes")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.take("alice"); !ok {
		t.Fatal("a token did not come back after 1/rate")
	}
	if ok, _ := l.take("alice"); ok {
		t.Fatal("more than one token came back")
	}
	// Idle buckets are forgotten once full again, so memory follows active users.
	now = now.Add(2 * time.Minute)
	l.take("carol")
	if _, kept := l.buckets["alice"]; kept {
		t.Fatal("a refilled bucket was kept")
	}
	if ok, _ := newRateLimiter(0, 0).take("x"); !ok {
		t.Fatal("rate 0 must disable the limit")
	}
}
