package workflow

import (
	"fmt"
	"regexp"
	"strings"
)

// Repository URLs are checked by libs/repourl (syntax, addresses, allow-list).

var branchChars = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)

// ValidateBranch applies the parts of git check-ref-format that matter for safety.
func ValidateBranch(b string) error {
	switch {
	case b == "":
		return fmt.Errorf("base_branch is empty")
	case len(b) > 200:
		return fmt.Errorf("base_branch is longer than 200 characters")
	case !branchChars.MatchString(b):
		return fmt.Errorf("base_branch may contain only letters, digits, '.', '_', '/' and '-'")
	case strings.HasPrefix(b, "-") || strings.HasPrefix(b, "/") || strings.HasSuffix(b, "/") ||
		strings.HasSuffix(b, ".lock") || strings.Contains(b, "..") || strings.Contains(b, "//") || strings.HasSuffix(b, "."):
		return fmt.Errorf("base_branch %q is not a valid branch name", b)
	}
	return nil
}
