package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// githubClient speaks GitHub's REST API (v3, "2022-11-28"), and its GraphQL API for the one
// mutation REST lacks (markPullRequestReadyForReview).
type githubClient struct {
	api
	graphql string
}

// NewGitHub is a GitHub client for base (https://api.github.com, or https://<host>/api/v3 for
// GitHub Enterprise Server) with token.
func NewGitHub(base, token string, timeout time.Duration) Forge {
	base = strings.TrimRight(base, "/")
	graphql := base + "/graphql"
	if b, ok := strings.CutSuffix(base, "/api/v3"); ok {
		graphql = b + "/api/graphql" // GitHub Enterprise Server
	}
	return &githubClient{
		api: newAPI(GitHub, base, timeout, func(h http.Header) { h.Set("Authorization", "Bearer "+token) },
			map[string]string{"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}),
		graphql: graphql,
	}
}

func (c *githubClient) Kind() string { return GitHub }

type githubPR struct {
	Number  int    `json:"number"`
	HTMLURL string `json:"html_url"`
	NodeID  string `json:"node_id"`
	Title   string `json:"title"`
	Draft   bool   `json:"draft"`
	Head    struct {
		Ref string `json:"ref"`
	} `json:"head"`
}

func (p githubPR) pr() PullRequest {
	return PullRequest{Number: p.Number, URL: p.HTMLURL, NodeID: p.NodeID, Title: p.Title, Draft: p.Draft, HeadRef: p.Head.Ref}
}

func githubRepoPath(repo Repo) string {
	o, n, _ := strings.Cut(repo.Path, "/")
	return "/repos/" + url.PathEscape(o) + "/" + url.PathEscape(n)
}

func (c *githubClient) FindOpen(ctx context.Context, repo Repo, head string) (*PullRequest, error) {
	q := url.Values{"state": {"open"}, "head": {repo.owner() + ":" + head}, "per_page": {"10"}}
	pr, _, err := findOpen[githubPR](ctx, &c.api, githubRepoPath(repo)+"/pulls", q, head)
	return pr, err
}

func (c *githubClient) Open(ctx context.Context, repo Repo, in NewPullRequest) (PullRequest, error) {
	var p githubPR
	err := c.do(ctx, http.MethodPost, githubRepoPath(repo)+"/pulls", map[string]any{
		"title": in.Title, "body": in.Body, "head": in.Head, "base": in.Base, "draft": true,
	}, &p)
	return p.pr(), err
}

func (c *githubClient) Update(ctx context.Context, repo Repo, pr PullRequest, title, body string) error {
	return c.do(ctx, http.MethodPatch, fmt.Sprintf("%s/pulls/%d", githubRepoPath(repo), pr.Number),
		map[string]any{"title": title, "body": body}, nil)
}

func (c *githubClient) SetStatus(ctx context.Context, repo Repo, sha string, st Status) error {
	return c.do(ctx, http.MethodPost, githubRepoPath(repo)+"/statuses/"+url.PathEscape(sha), map[string]any{
		"state": string(st.State), "context": st.Context, "description": truncate(st.Description, 140), "target_url": st.TargetURL,
	}, nil)
}

// markReadyMutation is GitHub's only way out of draft (REST has none).
const markReadyMutation = `mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) { pullRequest { isDraft } } }`

func (c *githubClient) MarkReady(ctx context.Context, repo Repo, pr PullRequest) error {
	if !pr.Draft {
		return nil
	}
	if pr.NodeID == "" {
		return errors.New("github: pull request has no node id to mark ready")
	}
	var out struct {
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := c.doURL(ctx, http.MethodPost, c.graphql, "/graphql markPullRequestReadyForReview", map[string]any{
		"query": markReadyMutation, "variables": map[string]string{"id": pr.NodeID},
	}, &out); err != nil {
		return err
	}
	if len(out.Errors) > 0 {
		msgs := make([]string, len(out.Errors))
		for i, e := range out.Errors {
			msgs[i] = e.Message
		}
		return &APIError{Forge: GitHub, Method: http.MethodPost, Path: "/graphql markPullRequestReadyForReview", Status: http.StatusOK,
			Message: strings.Join(msgs, "; ")}
	}
	return nil
}

// truncate bounds s to n bytes on a rune boundary (status descriptions are short).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
