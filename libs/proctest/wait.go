package proctest

import (
	"testing"
	"time"
)

// Returned waits up to within for what a test started in the background (a server, a run, a
// process's Wait) to send its result on errc, and fails the test, naming it what, when that
// result is an error or does not come in time.
func Returned(t testing.TB, errc <-chan error, within time.Duration, what string) {
	t.Helper()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(within):
		t.Fatalf("%s did not return within %s", what, within)
	}
}

// Eventually calls cond every poll until it reports true, and fails the test, naming the
// condition what, when it still does not after within.
func Eventually(t testing.TB, within, poll time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not met within %s", what, within)
		}
		time.Sleep(poll)
	}
}
