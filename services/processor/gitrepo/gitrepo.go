// Package gitrepo drives git (the binary, through os/exec) for the real executor: validating a
// ticket's repository URL, cloning or fetching it into a work directory, writing the LLM's
// file edits safely inside it, committing on a run branch and pushing it.
//
// Every git invocation gets `--` before URLs and paths that come from tickets, a minimal
// environment with GIT_TERMINAL_PROMPT=0 (never waits for a password), GIT_ALLOW_PROTOCOL
// (https and ssh, plus file when allowed), and no system or global git configuration. An
// https token travels in an http.<url>.extraHeader set through GIT_CONFIG_* environment
// variables, scoped to the configured hosts: it is never in argv, in a URL, or in the work
// directory's config.
package gitrepo

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/ticketflow/ticketflow/services/processor/redact"
)

// Config configures git access.
type Config struct {
	// AllowFile permits file:// repository URLs (tests, local demos).
	AllowFile bool
	// Token is sent as HTTP Basic credentials (x-access-token:<token>) to TokenHosts over https.
	Token string
	// TokenHosts are the hosts the token may be sent to (default: github.com).
	TokenHosts []string
	// Redactor masks secrets in error messages (nil: URL credentials only).
	Redactor *redact.Redactor
	// AuthorName and AuthorEmail sign the commits (default ticketflow, ticketflow@localhost).
	AuthorName, AuthorEmail string
}

// Git runs git commands with Config.
type Git struct{ cfg Config }

// New returns a Git.
func New(cfg Config) *Git {
	if len(cfg.TokenHosts) == 0 {
		cfg.TokenHosts = []string{"github.com"}
	}
	if cfg.AuthorName == "" {
		cfg.AuthorName = "ticketflow"
	}
	if cfg.AuthorEmail == "" {
		cfg.AuthorEmail = "ticketflow@localhost"
	}
	return &Git{cfg: cfg}
}

// ErrInvalidURL is wrapped by ValidateURL's errors.
var ErrInvalidURL = errors.New("invalid repository URL")

var scpLike = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._~/-][^\s]*$`)

// ValidateURL accepts https://host/..., ssh://host/..., scp-like user@host:path, and
// file:///abs/path when allowFile. Anything that git could read as an option (a leading
// "-"), a transport helper ("ext::"), other schemes, control characters and local paths
// are refused.
func ValidateURL(raw string, allowFile bool) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidURL, redact.New().String(raw), why) }
	switch {
	case raw == "":
		return bad("empty")
	case strings.HasPrefix(raw, "-"):
		return bad("must not start with '-'")
	case strings.ContainsAny(raw, " \t\r\n\x00") || strings.ContainsFunc(raw, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return bad("contains whitespace or control characters")
	case strings.Contains(raw, "::"):
		return bad("transport helpers are not allowed")
	}
	if scpLike.MatchString(raw) && !strings.Contains(raw, "://") {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad(err.Error())
	}
	switch u.Scheme {
	case "https", "ssh":
		if u.Host == "" || strings.HasPrefix(u.Host, "-") {
			return bad("missing or invalid host")
		}
		if u.Scheme == "https" && u.User != nil {
			return bad("credentials belong in TICKETFLOW_GIT_TOKEN, not in the URL")
		}
		return nil
	case "file":
		if !allowFile {
			return bad("file:// repositories are disabled (TICKETFLOW_ALLOW_FILE_REPOS)")
		}
		if u.Host != "" && u.Host != "localhost" || !strings.HasPrefix(u.Path, "/") {
			return bad("file:// URLs need an absolute local path")
		}
		return nil
	case "":
		return bad("local paths are not allowed; use file:// (if enabled) or https")
	default:
		return bad("scheme " + u.Scheme + " is not allowed (https, ssh" + map[bool]string{true: ", file", false: ""}[allowFile] + ")")
	}
}

// ValidateBranch accepts a branch name git accepts that cannot be read as an option.
func ValidateBranch(ctx context.Context, name string) error {
	if name == "" || strings.HasPrefix(name, "-") {
		return fmt.Errorf("invalid branch name %q", name)
	}
	out, err := exec.CommandContext(ctx, "git", "check-ref-format", "--branch", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("invalid branch name %q: %s", name, strings.TrimSpace(string(out)))
	}
	return nil
}

func (g *Git) env() []string {
	protocols := "https:ssh"
	if g.cfg.AllowFile {
		protocols += ":file"
	}
	env := []string{
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ALLOW_PROTOCOL=" + protocols,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_SSH_COMMAND=ssh -o BatchMode=yes",
		"LANG=C",
		"LC_ALL=C",
	}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "SSH_AUTH_SOCK"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if g.cfg.Token != "" {
		header := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+g.cfg.Token))
		env = append(env, "GIT_CONFIG_COUNT="+strconv.Itoa(len(g.cfg.TokenHosts)))
		for i, host := range g.cfg.TokenHosts {
			env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=http.https://%s/.extraHeader", i, host),
				fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, header))
		}
	}
	return env
}

// run executes git in dir and returns its trimmed stdout; errors carry stderr, redacted.
func (g *Git) run(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = g.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		return "", g.cfg.Redactor.Error(fmt.Errorf("git %s: %v: %s", args[0], err, msg))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Sync makes dir a clean checkout of branch from repoURL (cloning when dir holds no
// repository, fetching otherwise) on the local branch "ticketflow-work", and returns the
// commit checked out.
func (g *Git) Sync(ctx context.Context, repoURL, branch, dir string) (string, error) {
	if err := ValidateURL(repoURL, g.cfg.AllowFile); err != nil {
		return "", err
	}
	if err := ValidateBranch(ctx, branch); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		if err := os.RemoveAll(dir); err != nil {
			return "", err
		}
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return "", err
		}
		if _, err := g.run(ctx, filepath.Dir(dir), "clone", "--quiet", "--no-tags", "--branch", branch, "--", repoURL, dir); err != nil {
			return "", err
		}
	} else if _, err := g.run(ctx, dir, "remote", "set-url", "--", "origin", repoURL); err != nil {
		return "", err
	}
	commit, err := g.FetchBranch(ctx, dir, branch)
	if err != nil {
		return "", err
	}
	return commit, g.ResetTo(ctx, dir, commit)
}

// FetchBranch fetches branch from origin and returns its commit.
func (g *Git) FetchBranch(ctx context.Context, dir, branch string) (string, error) {
	ref := "refs/remotes/origin/" + branch
	if _, err := g.run(ctx, dir, "fetch", "--quiet", "--no-tags", "--", "origin", "+refs/heads/"+branch+":"+ref); err != nil {
		return "", err
	}
	return g.run(ctx, dir, "rev-parse", "--verify", "--end-of-options", ref+"^{commit}")
}

// ResetTo checks out commit on the local branch "ticketflow-work" and removes every change
// and untracked file.
func (g *Git) ResetTo(ctx context.Context, dir, commit string) error {
	if _, err := g.run(ctx, dir, "checkout", "--quiet", "--force", "-B", "ticketflow-work", commit, "--"); err != nil {
		return err
	}
	_, err := g.run(ctx, dir, "clean", "-ffdxq")
	return err
}

// RunBranches returns the numbers n of origin's branches prefix/<n>, highest first.
func (g *Git) RunBranches(ctx context.Context, dir, prefix string) ([]int, error) {
	out, err := g.run(ctx, dir, "ls-remote", "--heads", "--", "origin", "refs/heads/"+prefix+"/*")
	if err != nil {
		return nil, err
	}
	var ns []int
	for _, line := range strings.Split(out, "\n") {
		_, ref, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimPrefix(ref, "refs/heads/"+prefix+"/")); err == nil {
			ns = append(ns, n)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(ns)))
	return ns, nil
}

// Head returns the commit checked out in dir.
func (g *Git) Head(ctx context.Context, dir string) (string, error) {
	return g.run(ctx, dir, "rev-parse", "HEAD")
}

// Files lists the tracked files of dir.
func (g *Git) Files(ctx context.Context, dir string) ([]string, error) {
	out, err := g.run(ctx, dir, "ls-files", "-z")
	if err != nil {
		return nil, err
	}
	var files []string
	for _, f := range strings.Split(out, "\x00") {
		if f != "" {
			files = append(files, f)
		}
	}
	return files, nil
}

// Commit commits every change in dir (an empty commit when there is none) on branch, and
// returns the new commit.
func (g *Git) Commit(ctx context.Context, dir, branch, message string) (string, error) {
	if err := ValidateBranch(ctx, branch); err != nil {
		return "", err
	}
	if _, err := g.run(ctx, dir, "checkout", "--quiet", "-B", branch); err != nil {
		return "", err
	}
	if _, err := g.run(ctx, dir, "add", "--all"); err != nil {
		return "", err
	}
	if _, err := g.run(ctx, dir, "-c", "user.name="+g.cfg.AuthorName, "-c", "user.email="+g.cfg.AuthorEmail, "-c", "commit.gpgsign=false",
		"-c", "core.hooksPath=/dev/null", "commit", "--quiet", "--allow-empty", "--no-verify", "-m", message); err != nil {
		return "", err
	}
	return g.Head(ctx, dir)
}

// Push force-pushes HEAD to origin's branch (force: a retried attempt replaces its own
// earlier push of the same run branch).
func (g *Git) Push(ctx context.Context, dir, branch string) error {
	_, err := g.run(ctx, dir, "-c", "core.hooksPath=/dev/null", "push", "--quiet", "--force", "--no-verify", "--", "origin", "HEAD:refs/heads/"+branch)
	return err
}

// ErrUnsafePath is wrapped by SafePath's errors.
var ErrUnsafePath = errors.New("unsafe path")

// SafePath resolves rel inside root. It refuses absolute paths, paths leaving root, anything
// under .git, and paths that go through a symbolic link (which could point outside root).
func SafePath(root, rel string) (string, error) {
	bad := func(why string) (string, error) { return "", fmt.Errorf("%w %q: %s", ErrUnsafePath, rel, why) }
	if rel == "" || strings.ContainsRune(rel, 0) {
		return bad("empty or contains NUL")
	}
	if filepath.IsAbs(rel) || strings.HasPrefix(rel, "/") || strings.HasPrefix(rel, `\`) {
		return bad("absolute")
	}
	clean := filepath.Clean(rel)
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return bad("outside the repository")
	}
	parts := strings.Split(clean, "/")
	if strings.EqualFold(parts[0], ".git") {
		return bad("inside .git")
	}
	cur := root
	for _, p := range parts {
		cur = filepath.Join(cur, p)
		fi, err := os.Lstat(cur)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return bad("goes through a symbolic link")
		}
	}
	return filepath.Join(root, clean), nil
}

// WriteFile writes content to rel inside root (creating directories).
func WriteFile(root, rel, content string) error {
	p, err := SafePath(root, rel)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(content), 0o644)
}

// RemoveFile deletes rel inside root (a missing file is fine).
func RemoveFile(root, rel string) error {
	p, err := SafePath(root, rel)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
