package workflow

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// ValidateRepositoryURL accepts https://, ssh:// and scp-like (git@host:path) URLs, and
// file:// only when allowFile is set (local development and tests). It refuses anything git
// could read as an option (a leading '-') or that carries credentials: credentials come from
// configuration, never from a ticket, so they never enter an event.
func ValidateRepositoryURL(raw string, allowFile bool) error {
	if raw == "" {
		return nil // a ticket without a repository is allowed; the real executor refuses to run it
	}
	if len(raw) > 2048 {
		return fmt.Errorf("repository_url is longer than 2048 characters")
	}
	if strings.HasPrefix(raw, "-") || strings.ContainsAny(raw, " \t\r\n\x00") {
		return fmt.Errorf("repository_url must not start with '-' or contain whitespace")
	}
	if m := scpLike.FindStringSubmatch(raw); m != nil {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("repository_url is not a URL: %v", err)
	}
	switch u.Scheme {
	case "https", "ssh":
		if u.Host == "" || strings.HasPrefix(u.Host, "-") {
			return fmt.Errorf("repository_url needs a host")
		}
		if _, hasPassword := u.User.Password(); hasPassword || (u.Scheme == "https" && u.User != nil) {
			return fmt.Errorf("repository_url must not embed credentials; configure them on the server")
		}
	case "file":
		if !allowFile {
			return fmt.Errorf("file:// repositories are disabled (TICKETFLOW_ALLOW_FILE_REPOS)")
		}
		if u.Path == "" || u.Host != "" {
			return fmt.Errorf("file:// repository_url needs an absolute path (file:///path)")
		}
	default:
		return fmt.Errorf("repository_url scheme %q is not allowed (https, ssh, or git@host:path)", u.Scheme)
	}
	return nil
}

var scpLike = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*@[A-Za-z0-9][A-Za-z0-9.-]*:[A-Za-z0-9_./~-][A-Za-z0-9_./~-]*$`)

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
