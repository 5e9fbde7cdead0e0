package proctest

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatalf records the message and ends the goroutine, as
// t.Fatalf does.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// failure runs fn with a recorder and returns what it failed with ("" if it did not).
func failure(fn func(t testing.TB)) string {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	return r.failed
}

func TestReturned(t *testing.T) {
	result := func(err error) <-chan error {
		c := make(chan error, 1)
		c <- err
		return c
	}
	for _, c := range []struct {
		name string
		errc <-chan error
		want string
	}{
		{"nil", result(nil), ""},
		{"error", result(errors.New("boom")), "server: boom"},
		{"nothing", make(chan error), "server did not return within 20ms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := failure(func(t testing.TB) { Returned(t, c.errc, 20*time.Millisecond, "server") }); got != c.want {
				t.Fatalf("failed with %q, want %q", got, c.want)
			}
		})
	}
}

func TestEventually(t *testing.T) {
	calls := 0
	if got := failure(func(t testing.TB) {
		Eventually(t, time.Second, time.Millisecond, "third call", func() bool { calls++; return calls == 3 })
	}); got != "" || calls != 3 {
		t.Fatalf("failed with %q after %d calls, want no failure after 3", got, calls)
	}
	if got := failure(func(t testing.TB) {
		Eventually(t, 20*time.Millisecond, time.Millisecond, "never", func() bool { return false })
	}); got != "never: not met within 20ms" {
		t.Fatalf("failed with %q", got)
	}
}
