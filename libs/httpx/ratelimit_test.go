package httpx

import (
	"testing"
	"time"
)

func TestRateLimiterPerKey(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewRateLimiter(2, 3) // 2 per second, 3 at once
	for i := range 3 {
		if ok, _ := l.Take("alice", now); !ok {
			t.Fatalf("write %d within the burst refused", i+1)
		}
	}
	ok, wait := l.Take("alice", now)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("fourth write: ok=%v wait=%v, want refused for 500ms", ok, wait)
	}
	if ok, _ := l.Take("bob", now); !ok {
		t.Fatal("another key is limited by alice's writes")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.Take("alice", now); !ok {
		t.Fatal("a token did not come back after 1/rate")
	}
	if ok, _ := l.Take("alice", now); ok {
		t.Fatal("more than one token came back")
	}
	// Idle buckets are forgotten once full again, so memory follows active keys.
	now = now.Add(2 * time.Minute)
	l.Take("carol", now)
	if _, kept := l.buckets["alice"]; kept {
		t.Fatal("a refilled bucket was kept")
	}
	if ok, _ := NewRateLimiter(0, 0).Take("x", now); !ok {
		t.Fatal("rate 0 must disable the limit")
	}
}
