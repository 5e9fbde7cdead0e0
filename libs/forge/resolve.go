package forge

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/repourl"
)

// knownHosts are the forges every installation knows.
var knownHosts = map[string]string{"github.com": GitHub, "gitlab.com": GitLab}

// Resolver finds the forge, API and token of a ticket's repository.
type Resolver struct {
	kinds    map[string]string // host → kind
	apis     map[string]string // host → API base
	tokens   []tokenRule
	mirrors  map[string]string // repository URL (normalised) → forge repository URL
	gitToken string
	policy   *repourl.Policy
	timeout  time.Duration
	// New builds a client; tests replace it.
	newClient func(kind, base, token string, timeout time.Duration) Forge
}

type tokenRule struct {
	pattern repourl.Pattern
	token   string
}

// NewResolver reads cfg. gitToken (TICKETFLOW_GIT_TOKEN) is the fallback token of the
// repositories policy allow-lists (nil policy: no fallback).
func NewResolver(cfg config.Forge, gitToken string, policy *repourl.Policy) (*Resolver, error) {
	r := &Resolver{kinds: map[string]string{}, apis: map[string]string{}, mirrors: map[string]string{},
		gitToken: gitToken, policy: policy, timeout: cfg.Timeout, newClient: NewClient}
	for h, k := range knownHosts {
		r.kinds[h] = k
	}
	if err := eachPair("TICKETFLOW_FORGE_HOSTS", cfg.Hosts, func(host, kind string) error {
		k := strings.ToLower(kind)
		switch k {
		case GitHub, GitLab, Gitea:
		case "forgejo":
			k = Gitea
		default:
			return fmt.Errorf("%q: unknown forge %q (github, gitlab, gitea, forgejo)", host+"="+kind, kind)
		}
		r.kinds[strings.ToLower(host)] = k
		return nil
	}); err != nil {
		return nil, err
	}
	if err := eachPair("TICKETFLOW_FORGE_API_URLS", cfg.APIURLs, func(host, base string) error {
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("%s: %q is not an http(s) URL", host, base)
		}
		r.apis[strings.ToLower(host)] = strings.TrimRight(base, "/")
		return nil
	}); err != nil {
		return nil, err
	}
	if err := eachPair("TICKETFLOW_FORGE_TOKENS", cfg.Tokens, func(pat, token string) error {
		p, err := repourl.ParsePattern(pat)
		if err != nil {
			return err
		}
		r.tokens = append(r.tokens, tokenRule{p, token})
		return nil
	}); err != nil {
		return nil, err
	}
	if err := eachPair("TICKETFLOW_FORGE_REPOSITORIES", cfg.Repositories, func(from, to string) error {
		fu, err := repourl.Parse(from)
		if err != nil {
			return fmt.Errorf("%q: %w", from, err)
		}
		tu, err := repourl.Parse(to)
		if err != nil || tu.Scheme == repourl.File {
			return fmt.Errorf("%q is not a forge repository URL", to)
		}
		r.mirrors[fu.String()] = tu.String()
		return nil
	}); err != nil {
		return nil, err
	}
	return r, nil
}

// eachPair calls fn with each "key=value" entry of the variable name, split at the first '='
// and trimmed, skipping empty entries; an error names the variable. An entry that is not
// key=value is not quoted: it may hold a token.
func eachPair(name string, entries []string, fn func(key, value string) error) error {
	for _, kv := range entries {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return fmt.Errorf("%s: an entry is not key=value", name)
		}
		if err := fn(k, v); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// NewClient is the client of one forge kind.
func NewClient(kind, base, token string, timeout time.Duration) Forge {
	switch kind {
	case GitHub:
		return NewGitHub(base, token, timeout)
	case GitLab:
		return NewGitLab(base, token, timeout)
	default:
		return NewGitea(base, token, timeout)
	}
}

// Target is a repository's forge, ready to use.
type Target struct {
	Forge Forge
	Repo  Repo
}

// Resolve is the forge of repositoryURL, false when it is on no known forge or has no token
// (then ticketflow opens no pull request for it: nothing is an error here). why says which.
func (r *Resolver) Resolve(repositoryURL string) (t Target, ok bool, why string) {
	u, err := repourl.Parse(repositoryURL)
	if err != nil {
		return Target{}, false, "the repository URL does not parse"
	}
	if m, found := r.mirrors[u.String()]; found {
		u, _ = repourl.Parse(m)
	}
	if u.Scheme == repourl.File {
		return Target{}, false, "a file:// repository is on no forge (see TICKETFLOW_FORGE_REPOSITORIES)"
	}
	kind := r.kinds[u.Host]
	if kind == "" {
		return Target{}, false, "host " + u.Host + " is not in TICKETFLOW_FORGE_HOSTS"
	}
	path := strings.TrimSuffix(strings.Trim(u.Path, "/"), ".git")
	if !strings.Contains(path, "/") {
		return Target{}, false, "the repository path has no owner"
	}
	token := ""
	for _, tr := range r.tokens {
		if tr.pattern.Matches(u) {
			token = tr.token
			break
		}
	}
	if token == "" && r.gitToken != "" && r.policy != nil && r.policy.Allowed(u) {
		token = r.gitToken
	}
	if token == "" {
		return Target{}, false, "no token for " + u.Host + "/" + path + " (TICKETFLOW_FORGE_TOKENS, or TICKETFLOW_GIT_TOKEN for allow-listed repositories)"
	}
	base := r.apis[u.Host]
	if base == "" {
		base = DefaultAPI(kind, u.Host)
	}
	return Target{Forge: r.newClient(kind, base, token, r.timeout), Repo: Repo{Host: u.Host, Path: path}}, true, ""
}

// DefaultAPI is the API base of a forge host when TICKETFLOW_FORGE_API_URLS names none.
func DefaultAPI(kind, host string) string {
	switch {
	case kind == GitHub && host == "github.com":
		return "https://api.github.com"
	case kind == GitHub:
		return "https://" + host + "/api/v3"
	case kind == GitLab:
		return "https://" + host + "/api/v4"
	default:
		return "https://" + host + "/api/v1"
	}
}

// Tokens are the configured tokens (for a redactor: they must never reach a log or event).
func (r *Resolver) Tokens() []string {
	out := make([]string, 0, len(r.tokens))
	for _, t := range r.tokens {
		out = append(out, t.token)
	}
	return out
}
