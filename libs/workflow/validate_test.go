package workflow

import "testing"

func TestValidateBranch(t *testing.T) {
	for b, ok := range map[string]bool{"main": true, "feature/x-1": true, "": false, "-x": false, "a..b": false, "a b": false, "x.lock": false, "a;rm": false} {
		if err := ValidateBranch(b); (err == nil) != ok {
			t.Errorf("ValidateBranch(%q) = %v, want ok=%v", b, err, ok)
		}
	}
}
