// Package goldentest keeps a checked-in file equal to what a test generates (a golden file):
// the test fails while they differ, and rewrites the file when run with its -update flag.
//
//	var update = flag.Bool("update", false, "rewrite the golden file")
//
//	goldentest.Check(t, path, generated, *update, "go test -run TestX -update")
package goldentest

import (
	"fmt"
	"os"
	"testing"
)

// Check fails t with what Compare reports.
func Check(t testing.TB, path, want string, update bool, howToUpdate string) {
	t.Helper()
	if err := Compare(path, want, update, howToUpdate); err != nil {
		t.Fatal(err)
	}
}

// Compare reports, naming howToUpdate (the command that rewrites the file) and showing both,
// when the file at path does not hold want. With update it writes want to path instead.
func Compare(path, want string, update bool, howToUpdate string) error {
	if update {
		return os.WriteFile(path, []byte(want), 0o644)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w (run: %s)", err, howToUpdate)
	}
	if string(got) != want {
		return fmt.Errorf("%s is stale; run: %s\n--- got\n%s\n--- want\n%s", path, howToUpdate, got, want)
	}
	return nil
}
