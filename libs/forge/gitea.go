package forge

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// giteaClient speaks the Gitea (and Forgejo) REST API (v1). A draft is a pull request whose
// title starts with "WIP: " (Gitea's default work-in-progress prefix).
type giteaClient struct{ api }

// NewGitea is a Gitea/Forgejo client for base (https://<host>/api/v1) with token.
func NewGitea(base, token string, timeout time.Duration) Forge {
	return &giteaClient{newAPI(Gitea, base, timeout, func(h http.Header) { h.Set("Authorization", "token "+token) }, nil)}
}

func (c *giteaClient) Kind() string { return Gitea }

type giteaPR struct {
	Number  int    `json:"number"`
	HTMLURL string `json:"html_url"`
	Title   string `json:"title"`
	Draft   bool   `json:"draft"`
	Head    struct {
		Ref string `json:"ref"`
	} `json:"head"`
}

func (p giteaPR) pr() PullRequest {
	draft := p.Draft || strings.TrimSpace(p.Title) != stripDraft(p.Title)
	return PullRequest{Number: p.Number, URL: p.HTMLURL, Title: p.Title, Draft: draft, HeadRef: p.Head.Ref}
}

func (c *giteaClient) FindOpen(ctx context.Context, repo Repo, head string) (*PullRequest, error) {
	// Gitea's list has no head filter: page through the open PRs (bounded).
	for page := 1; page <= 20; page++ {
		q := url.Values{"state": {"open"}, "limit": {"50"}, "page": {fmt.Sprint(page)}}
		pr, n, err := findOpen[giteaPR](ctx, &c.api, githubRepoPath(repo)+"/pulls", q, head)
		if err != nil || pr != nil || n < 50 {
			return pr, err
		}
	}
	return nil, nil
}

func (c *giteaClient) Open(ctx context.Context, repo Repo, in NewPullRequest) (PullRequest, error) {
	var p giteaPR
	err := c.do(ctx, http.MethodPost, githubRepoPath(repo)+"/pulls", map[string]any{
		"title": titled(giteaDraft, in.Title, true), "body": in.Body, "head": in.Head, "base": in.Base,
	}, &p)
	return p.pr(), err
}

func (c *giteaClient) Update(ctx context.Context, repo Repo, pr PullRequest, title, body string) error {
	return c.do(ctx, http.MethodPatch, fmt.Sprintf("%s/pulls/%d", githubRepoPath(repo), pr.Number),
		map[string]any{"title": titled(giteaDraft, title, pr.Draft), "body": body}, nil)
}

func (c *giteaClient) SetStatus(ctx context.Context, repo Repo, sha string, st Status) error {
	return c.do(ctx, http.MethodPost, githubRepoPath(repo)+"/statuses/"+url.PathEscape(sha), map[string]any{
		"state": string(st.State), "context": st.Context, "description": truncate(st.Description, 255), "target_url": st.TargetURL,
	}, nil)
}

func (c *giteaClient) MarkReady(ctx context.Context, repo Repo, pr PullRequest) error {
	if !pr.Draft {
		return nil
	}
	return c.do(ctx, http.MethodPatch, fmt.Sprintf("%s/pulls/%d", githubRepoPath(repo), pr.Number),
		map[string]any{"title": stripDraft(pr.Title)}, nil)
}
