// Package gitrepo drives git (the binary, through os/exec) for the real executor: cloning or
// fetching a ticket's repository into a work directory, writing the LLM's file edits safely
// inside it, committing on a run branch and pushing it.
//
// The repository and its work tree are not trusted: a ticket's CI ran in them. So:
//   - every URL goes through the repository policy (repourl) right before git uses it; the
//     host's checked address is pinned for git (http.curloptResolve for https, ssh's HostName
//     with HostKeyAlias for ssh), redirects are off: a DNS answer changed between the check and
//     the connection cannot reach an internal address;
//   - git runs with no system or global configuration, HOME an empty directory (no .netrc,
//     no ~/.gitconfig), no terminal prompt, GIT_ALLOW_PROTOCOL limited to the scheme of the
//     URL in use (none for local commands), and -c overrides for hooks (core.hooksPath=/dev/null),
//     fsmonitor, submodules, credential helpers, auto gc and safe.directory (the work dir only);
//   - the remote URL is given on each command line and .git/config holds only a fixed [core]
//     section the processor wrote: before every git command the work dir is verified (.git a
//     real directory, config byte-identical, no hooks, no symbolic link under .git, no
//     alternates or commondir) and, when it is not, deleted and cloned again;
//   - the server's credentials (the https token as an http.extraHeader set through GIT_CONFIG_*
//     environment variables, the ssh agent and keys) go only to repositories on the policy's
//     allow-list; the token is never in argv, in a URL or in the work directory;
//   - git's own error output goes to the server log (redacted); callers get errors that do
//     not tell an open port from a closed one.
package gitrepo

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/ticketflow/ticketflow/libs/repourl"
	"github.com/ticketflow/ticketflow/libs/telemetry"
	"github.com/ticketflow/ticketflow/services/processor/redact"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Config configures git access.
type Config struct {
	// Policy decides which repositories may be reached, and with credentials (required).
	Policy *repourl.Policy
	// Token is sent as HTTP Basic credentials (x-access-token:<token>) over https to the
	// repositories on the policy's allow-list, and to no other.
	Token string
	// CAFile is a PEM bundle git trusts for https (self-hosted forges); empty: the system's.
	CAFile string
	// Redactor masks secrets in logged git output (nil: URL credentials only).
	Redactor *redact.Redactor
	// Log receives git's detailed error output (nil: discarded).
	Log *slog.Logger
	// AuthorName and AuthorEmail sign the commits (default ticketflow, ticketflow@localhost).
	AuthorName, AuthorEmail string
}

// Git runs git commands with Config.
type Git struct {
	cfg Config

	homeOnce sync.Once
	home     string
	homeErr  error

	// origins maps a work dir to the repository URL Sync cloned it from: the URL given to
	// fetch, push and a re-clone (.git/config is not trusted to hold it).
	origins sync.Map
}

// New returns a Git.
func New(cfg Config) *Git {
	if cfg.AuthorName == "" {
		cfg.AuthorName = "ticketflow"
	}
	if cfg.AuthorEmail == "" {
		cfg.AuthorEmail = "ticketflow@localhost"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Git{cfg: cfg}
}

// ErrUnreachable is what a failed clone, fetch or ls-remote tells the ticket's author: the
// same for a closed port, a refused connection, a missing repository or missing rights.
var ErrUnreachable = errors.New("repository unreachable (clone refused or not found)")

// ErrPushRefused is what a failed push tells the ticket's author.
var ErrPushRefused = errors.New("push to the repository refused")

// ErrTampered: the work dir's git metadata was changed outside the processor (by CI); it was
// deleted and cloned again, and the operation that found it must be retried from the start.
var ErrTampered = errors.New("the work directory's .git was modified outside ticketflow; it was cloned again")

// CommandError is a failed git command. Error() is safe for run logs; Detail (git's
// redacted stderr) is only logged on the server.
type CommandError struct {
	Op     string
	Detail string
	public error
}

func (e *CommandError) Error() string {
	if e.public != nil {
		return "git " + e.Op + ": " + e.public.Error()
	}
	return "git " + e.Op + " failed"
}

func (e *CommandError) Unwrap() error { return e.public }

// ValidateBranch accepts a branch name git accepts that cannot be read as an option.
func ValidateBranch(ctx context.Context, name string) error {
	if name == "" || strings.HasPrefix(name, "-") {
		return fmt.Errorf("invalid branch name %q", name)
	}
	cmd := exec.CommandContext(ctx, "git", "check-ref-format", "--branch", name)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME=/nonexistent", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("invalid branch name %q: %s", name, strings.TrimSpace(string(out)))
	}
	return nil
}

// canonicalConfig is the whole .git/config of every work dir: what clone wrote is replaced
// by it, and any other content means the repository was tampered with.
const canonicalConfig = "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n"

// invocation is one git command.
type invocation struct {
	// repo is the work dir of commands that run inside a repository ("" for clone).
	repo string
	// cwd is where a clone runs.
	cwd string
	// target is the remote of network commands (nil: local, no protocol allowed).
	target *repourl.Target
	op     string
	args   []string
}

func (g *Git) homeDir() (string, error) {
	g.homeOnce.Do(func() {
		// An empty HOME: git and curl find no ~/.gitconfig, ~/.netrc or credential store.
		g.home, g.homeErr = os.MkdirTemp("", "ticketflow-git-home-")
	})
	return g.home, g.homeErr
}

// command builds the exec.Cmd of inv: hardened -c options first, then inv.args.
func (g *Git) command(ctx context.Context, inv invocation) (*exec.Cmd, error) {
	home, err := g.homeDir()
	if err != nil {
		return nil, fmt.Errorf("git home directory: %w", err)
	}
	args := []string{
		"-c", "core.hooksPath=/dev/null",
		"-c", "core.fsmonitor=false",
		"-c", "submodule.recurse=false",
		"-c", "credential.helper=",
		"-c", "http.followRedirects=false",
		"-c", "gc.auto=0",
		"-c", "maintenance.auto=false",
		"-c", "advice.detachedHead=false",
	}
	allowProtocol := "none"
	fileAllow := "never"
	env := []string{
		"GIT_TERMINAL_PROMPT=0",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"LANG=C",
		"LC_ALL=C",
	}
	for _, k := range []string{"PATH", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if inv.repo != "" {
		abs, err := filepath.Abs(inv.repo)
		if err != nil {
			return nil, err
		}
		// The work tree may belong to the sandbox's uid after a CI run: trust this one
		// directory, nothing else. GIT_DIR set: no discovery walks up to a parent repository.
		args = append(args, "-c", "safe.directory="+abs)
		env = append(env, "GIT_DIR="+filepath.Join(abs, ".git"), "GIT_WORK_TREE="+abs)
	} else {
		env = append(env, "GIT_CEILING_DIRECTORIES="+inv.cwd)
	}
	if t := inv.target; t != nil {
		allowProtocol = string(t.URL.Scheme)
		switch t.URL.Scheme {
		case repourl.File:
			fileAllow = "always"
		case repourl.HTTPS:
			if g.cfg.CAFile != "" {
				args = append(args, "-c", "http.sslCAInfo="+g.cfg.CAFile)
			}
			if _, literal := netipParse(t.URL.Host); !literal {
				// Pin the checked address: curl must not resolve the name again.
				args = append(args, "-c", fmt.Sprintf("http.curloptResolve=%s:%d:%s", t.URL.Host, t.URL.DefaultPort(), curlAddr(t)))
			}
			if g.cfg.Token != "" && t.Credentials {
				header := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+g.cfg.Token))
				env = append(env, "GIT_CONFIG_COUNT=1",
					"GIT_CONFIG_KEY_0=http.https://"+t.URL.HostPort()+"/.extraHeader", "GIT_CONFIG_VALUE_0="+header)
			}
		case repourl.SSH:
			env = append(env, "GIT_SSH_COMMAND="+sshCommand(t))
			if t.Credentials {
				if v, ok := os.LookupEnv("SSH_AUTH_SOCK"); ok {
					env = append(env, "SSH_AUTH_SOCK="+v)
				}
			}
		}
	}
	args = append(args, "-c", "protocol.file.allow="+fileAllow)
	env = append(env, "GIT_ALLOW_PROTOCOL="+allowProtocol)
	cmd := exec.CommandContext(ctx, "git", append(args, inv.args...)...)
	cmd.Env = env
	cmd.Dir = inv.repo
	if cmd.Dir == "" {
		cmd.Dir = inv.cwd
	}
	return cmd, nil
}

func netipParse(host string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(host)
	return a, err == nil
}

func curlAddr(t *repourl.Target) string {
	a := t.Addrs[0]
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

// sshCommand connects to the checked address (HostName) while host keys are looked up under
// the name (HostKeyAlias); no proxy of the ssh configuration may resolve the name again.
// Outside the allow-list, no key or agent is offered.
func sshCommand(t *repourl.Target) string {
	parts := []string{"ssh", "-o", "BatchMode=yes", "-o", "ProxyCommand=none", "-o", "ProxyJump=none",
		"-o", "HostName=" + t.Addrs[0].String(), "-o", "HostKeyAlias=" + t.URL.Host, "-o", "CheckHostIP=no"}
	if !t.Credentials {
		parts = append(parts, "-o", "PubkeyAuthentication=no", "-o", "IdentityAgent=none")
	}
	// Every part is made of checked host/address characters: quoting is for the shell
	// git runs GIT_SSH_COMMAND with.
	for i, p := range parts {
		parts[i] = "'" + p + "'"
	}
	return strings.Join(parts, " ")
}

// run executes inv and returns its trimmed stdout. A failure is logged with git's redacted
// stderr; the error returned says only what failed.
// Each git process is a "git <op>" span of the caller's span.
func (g *Git) run(ctx context.Context, inv invocation) (out string, err error) {
	ctx, span := telemetry.Tracer().Start(ctx, "git "+inv.op, trace.WithAttributes(attribute.String("ticketflow.git.op", inv.op)))
	defer func() {
		telemetry.RecordError(span, err)
		span.End()
	}()
	cmd, err := g.command(ctx, inv)
	if err != nil {
		return "", err
	}
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
		detail := g.cfg.Redactor.String(fmt.Sprintf("%v: %s", err, msg))
		ce := &CommandError{Op: inv.op, Detail: detail}
		switch inv.op {
		case "clone", "fetch", "ls-remote":
			ce.public = ErrUnreachable
		case "push":
			ce.public = ErrPushRefused
		}
		g.cfg.Log.Warn("git command failed", "op", inv.op, "dir", inv.repo+inv.cwd, "detail", detail)
		return "", ce
	}
	return strings.TrimSpace(stdout.String()), nil
}

// local runs a command in the work dir dir, which must hold a verified repository.
func (g *Git) local(ctx context.Context, dir, op string, args ...string) (string, error) {
	return g.run(ctx, invocation{repo: dir, op: op, args: append([]string{op}, args...)})
}

// remote checks the work dir's repository URL against the policy (resolving its host now)
// and runs a network command on it; args holds "{url}" where the URL goes.
func (g *Git) remote(ctx context.Context, dir, op string, args ...string) (string, error) {
	raw, ok := g.origins.Load(dir)
	if !ok {
		return "", fmt.Errorf("work dir %s was not prepared by Sync", dir)
	}
	target, err := g.cfg.Policy.Check(ctx, raw.(string))
	if err != nil {
		return "", g.refusal(err)
	}
	full := []string{op}
	for _, a := range args {
		if a == "{url}" {
			a = target.URL.String()
		}
		full = append(full, a)
	}
	return g.run(ctx, invocation{repo: dir, target: &target, op: op, args: full})
}

// refusal logs a policy refusal's detail (resolved addresses) for the server only.
func (g *Git) refusal(err error) error {
	var e *repourl.Error
	if errors.As(err, &e) && e.Detail != "" {
		g.cfg.Log.Warn("repository refused", "reason", e.Reason, "detail", e.Detail)
	}
	return err
}

// Check applies the repository policy to repoURL (resolving its host) without running git.
func (g *Git) Check(ctx context.Context, repoURL string) error {
	_, err := g.cfg.Policy.Check(ctx, repoURL)
	return g.refusal(err)
}

// Verify reports why dir is not a work dir the processor may run git in: .git a real
// directory holding the processor's config, no hooks, no symbolic links, no pointer to
// another repository's objects or config. nil when it is fine.
func Verify(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return errors.New("the work dir is not a directory")
	}
	gitDir := filepath.Join(dir, ".git")
	if fi, err = os.Lstat(gitDir); err != nil {
		return err
	}
	if !fi.IsDir() {
		return errors.New(".git is not a directory")
	}
	config, err := os.ReadFile(filepath.Join(gitDir, "config"))
	if err != nil {
		return err
	}
	if string(config) != canonicalConfig {
		return errors.New(".git/config was modified")
	}
	for _, name := range []string{"commondir", "gitdir", "config.worktree", "objects/info/alternates", "objects/info/http-alternates", "info/grafts", "shallow"} {
		if _, err := os.Lstat(filepath.Join(gitDir, name)); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf(".git/%s exists", name)
		}
	}
	if hooks, err := os.ReadDir(filepath.Join(gitDir, "hooks")); err == nil && len(hooks) > 0 {
		return errors.New(".git/hooks is not empty")
	}
	return filepath.WalkDir(gitDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link", path)
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
		return nil
	})
}

// ensure verifies dir before a git command; a tampered work dir is deleted and cloned again
// (reclone true).
func (g *Git) ensure(ctx context.Context, dir string) (reclone bool, err error) {
	verr := Verify(dir)
	if verr == nil {
		return false, nil
	}
	raw, ok := g.origins.Load(dir)
	if !ok {
		return false, fmt.Errorf("work dir %s was not prepared by Sync", dir)
	}
	if _, statErr := os.Lstat(dir); statErr == nil {
		g.cfg.Log.Warn("work dir failed verification: cloning it again", "dir", dir, "reason", verr.Error())
	}
	return true, g.clone(ctx, raw.(string), dir)
}

// clone replaces dir with a fresh clone of repoURL: no template (so no hooks), no checkout
// (ResetTo does it), and the canonical .git/config.
func (g *Git) clone(ctx context.Context, repoURL, dir string) error {
	target, err := g.cfg.Policy.Check(ctx, repoURL)
	if err != nil {
		return g.refusal(err)
	}
	if err := removeAll(dir); err != nil {
		return err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	if _, err := g.run(ctx, invocation{cwd: parent, target: &target, op: "clone",
		args: []string{"clone", "--quiet", "--no-checkout", "--no-tags", "--template=", "--", target.URL.String(), dir}}); err != nil {
		_ = removeAll(dir)
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ".git", "config"), []byte(canonicalConfig), 0o644); err != nil {
		return err
	}
	return Verify(dir)
}

// removeAll deletes dir even when CI left read-only directories in it.
func removeAll(dir string) error {
	err := os.RemoveAll(dir)
	if err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Type()&fs.ModeSymlink == 0 {
			_ = os.Chmod(path, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// Sync makes dir a clean checkout of branch from repoURL (cloning when dir holds no verified
// repository, fetching otherwise) on the local branch "ticketflow-work", and returns the
// commit checked out.
func (g *Git) Sync(ctx context.Context, repoURL, branch, dir string) (string, error) {
	if err := g.Check(ctx, repoURL); err != nil {
		return "", err
	}
	if err := ValidateBranch(ctx, branch); err != nil {
		return "", err
	}
	if prev, ok := g.origins.Load(dir); ok && prev.(string) != repoURL {
		g.origins.Delete(dir) // another repository: never fetch it into the old clone
		if err := removeAll(dir); err != nil {
			return "", err
		}
	}
	g.origins.Store(dir, repoURL)
	if _, err := g.ensure(ctx, dir); err != nil {
		return "", err
	}
	commit, err := g.FetchBranch(ctx, dir, branch)
	if err != nil {
		return "", err
	}
	return commit, g.ResetTo(ctx, dir, commit)
}

// FetchBranch fetches branch from the repository and returns its commit.
func (g *Git) FetchBranch(ctx context.Context, dir, branch string) (string, error) {
	if err := ValidateBranch(ctx, branch); err != nil {
		return "", err
	}
	if _, err := g.ensure(ctx, dir); err != nil {
		return "", err
	}
	ref := "refs/remotes/origin/" + branch
	if _, err := g.remote(ctx, dir, "fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "--", "{url}", "+refs/heads/"+branch+":"+ref); err != nil {
		return "", err
	}
	return g.local(ctx, dir, "rev-parse", "--verify", "--end-of-options", ref+"^{commit}")
}

// ResetTo checks out commit on the local branch "ticketflow-work" and removes every change
// and untracked file.
func (g *Git) ResetTo(ctx context.Context, dir, commit string) error {
	if _, err := g.ensure(ctx, dir); err != nil {
		return err
	}
	if _, err := g.local(ctx, dir, "checkout", "--quiet", "--force", "--no-recurse-submodules", "-B", "ticketflow-work", commit, "--"); err != nil {
		return err
	}
	_, err := g.local(ctx, dir, "clean", "-ffdxq")
	return err
}

// RunBranches returns the numbers n of the repository's branches prefix/<n>, highest first.
func (g *Git) RunBranches(ctx context.Context, dir, prefix string) ([]int, error) {
	if _, err := g.ensure(ctx, dir); err != nil {
		return nil, err
	}
	out, err := g.remote(ctx, dir, "ls-remote", "--heads", "--", "{url}", "refs/heads/"+prefix+"/*")
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

// verified is ensure for commands whose state a re-clone loses (the checkout, the index):
// they fail with ErrTampered after it.
func (g *Git) verified(ctx context.Context, dir string) error {
	reclone, err := g.ensure(ctx, dir)
	if err == nil && reclone {
		err = ErrTampered
	}
	return err
}

// Head returns the commit checked out in dir.
func (g *Git) Head(ctx context.Context, dir string) (string, error) {
	if err := g.verified(ctx, dir); err != nil {
		return "", err
	}
	return g.local(ctx, dir, "rev-parse", "HEAD")
}

// Files lists the tracked files of dir.
func (g *Git) Files(ctx context.Context, dir string) ([]string, error) {
	if err := g.verified(ctx, dir); err != nil {
		return nil, err
	}
	out, err := g.local(ctx, dir, "ls-files", "-z")
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
	if err := g.verified(ctx, dir); err != nil {
		return "", err
	}
	if _, err := g.local(ctx, dir, "checkout", "--quiet", "-B", branch); err != nil {
		return "", err
	}
	if _, err := g.local(ctx, dir, "add", "--all"); err != nil {
		return "", err
	}
	if _, err := g.run(ctx, invocation{repo: dir, op: "commit", args: []string{"-c", "user.name=" + g.cfg.AuthorName, "-c", "user.email=" + g.cfg.AuthorEmail,
		"-c", "commit.gpgsign=false", "commit", "--quiet", "--allow-empty", "--no-verify", "-m", message}}); err != nil {
		return "", err
	}
	return g.local(ctx, dir, "rev-parse", "HEAD")
}

// Push force-pushes HEAD to the repository's branch (force: a retried attempt replaces its
// own earlier push of the same run branch).
func (g *Git) Push(ctx context.Context, dir, branch string) error {
	if err := ValidateBranch(ctx, branch); err != nil {
		return err
	}
	if err := g.verified(ctx, dir); err != nil {
		return err
	}
	_, err := g.remote(ctx, dir, "push", "--quiet", "--force", "--no-verify", "--no-recurse-submodules", "--", "{url}", "HEAD:refs/heads/"+branch)
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
