// Package forge talks to the forges a ticket's repository lives on — GitHub, GitLab and
// Gitea/Forgejo — through their REST APIs (and GitHub's one GraphQL mutation that has no REST
// equivalent): a run's draft pull request (merge request on GitLab), its commit statuses, and
// the webhooks that bring reviews back (webhook.go). Which forge a repository is on, its API
// and its token come from the configuration (resolve.go).
//
// Every client uses net/http with a timeout; an error names the forge, the request, the HTTP
// status and the forge's message, never the token.
package forge

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Kinds of forge.
const (
	GitHub = "github"
	GitLab = "gitlab"
	Gitea  = "gitea" // Forgejo speaks the same API
)

// Repo is a repository on a forge: its host and its path ("owner/name"; GitLab groups may nest).
type Repo struct {
	Host string
	Path string
}

func (r Repo) String() string { return r.Host + "/" + r.Path }

// owner is the first path segment (GitHub's head=owner:branch filter).
func (r Repo) owner() string { o, _, _ := strings.Cut(r.Path, "/"); return o }

// PullRequest is an open pull (merge) request.
type PullRequest struct {
	// Number is the PR number (GitLab: the merge request's iid).
	Number int `json:"number"`
	// URL is the web page of the PR.
	URL string `json:"url"`
	// NodeID is GitHub's GraphQL id (marking a draft ready needs it); empty elsewhere.
	NodeID string `json:"node_id,omitempty"`
	// Title is the title as the forge shows it (GitLab and Gitea: with the draft prefix).
	Title string `json:"title"`
	Draft bool   `json:"draft"`
	// HeadRef is the source branch.
	HeadRef string `json:"head_ref"`
}

// NewPullRequest is what Open creates: a draft from Head into Base.
type NewPullRequest struct {
	Title, Body, Head, Base string
}

// State is a commit status state, mapped onto each forge's names.
type State string

const (
	Pending State = "pending"
	Success State = "success"
	Failure State = "failure"
	Error   State = "error"
)

// Status is one commit status: Context names it ("ticketflow/ci"), so a later status of the
// same context replaces the earlier one.
type Status struct {
	State       State
	Context     string
	Description string
	TargetURL   string
}

// Forge is one forge's API, authenticated for one repository's token.
type Forge interface {
	// Kind is github, gitlab or gitea.
	Kind() string
	// FindOpen is the open PR whose source branch is head (nil if none): what makes opening
	// idempotent — a retried step finds the PR its interrupted attempt opened.
	FindOpen(ctx context.Context, repo Repo, head string) (*PullRequest, error)
	// Open opens a draft PR.
	Open(ctx context.Context, repo Repo, pr NewPullRequest) (PullRequest, error)
	// Update sets the title and body of pr (keeping it a draft if it is one).
	Update(ctx context.Context, repo Repo, pr PullRequest, title, body string) error
	// SetStatus sets the commit status st on sha.
	SetStatus(ctx context.Context, repo Repo, sha string, st Status) error
	// MarkReady takes pr out of draft (nothing to do if it is not a draft).
	MarkReady(ctx context.Context, repo Repo, pr PullRequest) error
}

// APIError is a forge's refusal: the request, the status and the forge's message.
type APIError struct {
	Forge   string
	Method  string
	Path    string
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s API: %s %s: HTTP %d: %s", e.Forge, e.Method, e.Path, e.Status, cmp.Or(e.Message, http.StatusText(e.Status)))
}

// DefaultTimeout bounds one forge request when the configuration says nothing.
const DefaultTimeout = 15 * time.Second

// maxResponse bounds what is read of a forge's answer.
const maxResponse = 4 << 20

// api is the HTTP plumbing the three clients share.
type api struct {
	kind string
	base string // without a trailing slash
	hc   *http.Client
	// auth sets the token's header on a request.
	auth func(h http.Header)
	// headers are sent on every request (Accept, API version).
	headers map[string]string
}

func newAPI(kind, base string, timeout time.Duration, auth func(http.Header), headers map[string]string) api {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return api{kind: kind, base: strings.TrimRight(base, "/"), hc: &http.Client{Timeout: timeout}, auth: auth, headers: headers}
}

// do sends method path (relative to the API base, already escaped) with in as JSON (nil for
// none) and decodes a 2xx answer into out (nil to discard it).
func (a api) do(ctx context.Context, method, path string, in, out any) error {
	return a.doURL(ctx, method, a.base+path, path, in, out)
}

func (a api) doURL(ctx context.Context, method, url, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return fmt.Errorf("%s API: %s %s: %w", a.kind, method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "ticketflow")
	for k, v := range a.headers {
		req.Header.Set(k, v)
	}
	a.auth(req.Header)
	resp, err := a.hc.Do(req)
	if err != nil {
		// A *url.Error names the URL (no token: tokens go in headers only).
		return fmt.Errorf("%s API: %s %s: %w", a.kind, method, path, unwrapURL(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("%s API: %s %s: reading the answer: %w", a.kind, method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &APIError{Forge: a.kind, Method: method, Path: path, Status: resp.StatusCode, Message: apiMessage(raw)}
	}
	if out == nil || len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s API: %s %s: unreadable answer: %w", a.kind, method, path, err)
	}
	return nil
}

// unwrapURL drops *url.Error's "Get "<url>":" prefix: the caller names the request itself.
func unwrapURL(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// apiMessage is the human part of a forge's error body: GitHub and Gitea {"message": ...}
// (GitHub adds "errors": [{"message"|"code"}]), GitLab {"message": string|object|array} or
// {"error": ...}. Unknown shapes give their first 200 bytes.
func apiMessage(raw []byte) string {
	var m struct {
		Message json.RawMessage `json:"message"`
		Error   json.RawMessage `json:"error"`
		Errors  []struct {
			Message string `json:"message"`
			Code    string `json:"code"`
			Field   string `json:"field"`
		} `json:"errors"`
	}
	if json.Unmarshal(raw, &m) != nil {
		s := strings.TrimSpace(string(raw))
		if len(s) > 200 {
			s = s[:200]
		}
		return s
	}
	var parts []string
	for _, f := range []json.RawMessage{m.Message, m.Error} {
		if len(f) == 0 {
			continue
		}
		var s string
		if json.Unmarshal(f, &s) == nil {
			parts = append(parts, s)
		} else {
			parts = append(parts, string(f))
		}
	}
	for _, e := range m.Errors {
		switch {
		case e.Message != "":
			parts = append(parts, e.Message)
		case e.Code != "":
			parts = append(parts, strings.TrimSpace(e.Field+" "+e.Code))
		}
	}
	return strings.Join(parts, ": ")
}

// Draft prefixes: GitLab's draft marker, and Gitea's work-in-progress one.
const (
	gitlabDraft = "Draft: "
	giteaDraft  = "WIP: "
)

// stripDraft removes the draft markers GitLab and Gitea recognise.
func stripDraft(title string) string {
	for {
		t := strings.TrimSpace(title)
		lower := strings.ToLower(t)
		switch {
		case strings.HasPrefix(lower, "draft:"):
			title = t[len("draft:"):]
		case strings.HasPrefix(lower, "wip:"):
			title = t[len("wip:"):]
		case strings.HasPrefix(lower, "[draft]"):
			title = t[len("[draft]"):]
		case strings.HasPrefix(lower, "[wip]"):
			title = t[len("[wip]"):]
		default:
			return t
		}
	}
}

// titled is title as a forge that marks drafts by a title prefix shows it: marker first when
// draft, never twice.
func titled(marker, title string, draft bool) string {
	if draft {
		return marker + stripDraft(title)
	}
	return stripDraft(title)
}

// findOpen lists path?q (a page of the forge's pull requests) and returns the open one from
// head, and how many the page held.
func findOpen[T interface{ pr() PullRequest }](ctx context.Context, a *api, path string, q url.Values, head string) (*PullRequest, int, error) {
	var prs []T
	if err := a.do(ctx, http.MethodGet, path+"?"+q.Encode(), nil, &prs); err != nil {
		return nil, 0, err
	}
	return openByHead(prs, head), len(prs), nil
}

// openByHead is the first of prs whose head branch is head, or nil.
func openByHead[T interface{ pr() PullRequest }](prs []T, head string) *PullRequest {
	for _, p := range prs {
		if pr := p.pr(); pr.HeadRef == head {
			return &pr
		}
	}
	return nil
}

// BranchPrefix is the prefix of the branches ticketflow opens pull requests from; one
// branch per ticket (Branch), force-pushed with each iteration's commit, so that one PR
// follows the ticket across iterations and runs.
const BranchPrefix = "ticketflow-pr/"

// Branch is the pull request branch of a ticket.
func Branch(ticketID string) string { return BranchPrefix + ticketID }

// TicketOfBranch is the ticket a pull request branch belongs to.
func TicketOfBranch(ref string) (string, bool) {
	ref = strings.TrimPrefix(ref, "refs/heads/")
	id, ok := strings.CutPrefix(ref, BranchPrefix)
	return id, ok && id != "" && !strings.Contains(id, "/")
}
