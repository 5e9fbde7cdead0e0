package forge

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// gitlabClient speaks GitLab's REST API (v4). A draft merge request is one whose title starts
// with "Draft: "; marking it ready removes the prefix.
type gitlabClient struct{ api }

// NewGitLab is a GitLab client for base (https://gitlab.com/api/v4) with token (a personal,
// project or group access token with the api scope).
func NewGitLab(base, token string, timeout time.Duration) Forge {
	return &gitlabClient{newAPI(GitLab, base, timeout, func(h http.Header) { h.Set("PRIVATE-TOKEN", token) }, nil)}
}

func (c *gitlabClient) Kind() string { return GitLab }

type gitlabMR struct {
	IID    int    `json:"iid"`
	WebURL string `json:"web_url"`
	Title  string `json:"title"`
	Draft  bool   `json:"draft"`
	WIP    bool   `json:"work_in_progress"` // before GitLab 13.x's "draft"
	Source string `json:"source_branch"`
}

func (m gitlabMR) pr() PullRequest {
	return PullRequest{Number: m.IID, URL: m.WebURL, Title: m.Title, Draft: m.Draft || m.WIP, HeadRef: m.Source}
}

// gitlabProject is the project's id as GitLab's API takes it: the URL-encoded path.
func gitlabProject(repo Repo) string { return "/projects/" + url.PathEscape(repo.Path) }

func (c *gitlabClient) FindOpen(ctx context.Context, repo Repo, head string) (*PullRequest, error) {
	q := url.Values{"state": {"opened"}, "source_branch": {head}}
	mr, _, err := findOpen[gitlabMR](ctx, &c.api, gitlabProject(repo)+"/merge_requests", q, head)
	return mr, err
}

func (c *gitlabClient) Open(ctx context.Context, repo Repo, in NewPullRequest) (PullRequest, error) {
	var m gitlabMR
	err := c.do(ctx, http.MethodPost, gitlabProject(repo)+"/merge_requests", map[string]any{
		"source_branch": in.Head, "target_branch": in.Base, "title": titled(gitlabDraft, in.Title, true), "description": in.Body,
	}, &m)
	return m.pr(), err
}

func (c *gitlabClient) Update(ctx context.Context, repo Repo, pr PullRequest, title, body string) error {
	return c.do(ctx, http.MethodPut, fmt.Sprintf("%s/merge_requests/%d", gitlabProject(repo), pr.Number),
		map[string]any{"title": titled(gitlabDraft, title, pr.Draft), "description": body}, nil)
}

// gitlabStates maps commit status states onto GitLab's (pending, running, success, failed, canceled).
var gitlabStates = map[State]string{Pending: "pending", Success: "success", Failure: "failed", Error: "canceled"}

func (c *gitlabClient) SetStatus(ctx context.Context, repo Repo, sha string, st Status) error {
	return c.do(ctx, http.MethodPost, gitlabProject(repo)+"/statuses/"+url.PathEscape(sha), map[string]any{
		"state": gitlabStates[st.State], "name": st.Context, "description": truncate(st.Description, 255), "target_url": st.TargetURL,
	}, nil)
}

func (c *gitlabClient) MarkReady(ctx context.Context, repo Repo, pr PullRequest) error {
	if !pr.Draft && strings.TrimSpace(pr.Title) == stripDraft(pr.Title) {
		return nil
	}
	return c.do(ctx, http.MethodPut, fmt.Sprintf("%s/merge_requests/%d", gitlabProject(repo), pr.Number),
		map[string]any{"title": stripDraft(pr.Title)}, nil)
}
