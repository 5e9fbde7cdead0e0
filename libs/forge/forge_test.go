package forge_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/forge"
	"github.com/ticketflow/ticketflow/libs/forge/forgetest"
	"github.com/ticketflow/ticketflow/libs/repourl"
)

const token = "tok-secret-123"

// exercise walks a client through a run's life: open a draft, find it again, update it, set
// statuses, mark it ready. The fake then holds the failed status, in the forge's own word
// (failedState), and the passed one.
func exercise(t *testing.T, f forge.Forge, srv *forgetest.Server, repo forge.Repo, number int, failedState string) {
	t.Helper()
	ctx := context.Background()
	if pr, err := f.FindOpen(ctx, repo, "ticketflow-pr/t1"); err != nil || pr != nil {
		t.Fatalf("FindOpen before any = %+v, %v", pr, err)
	}
	pr, err := f.Open(ctx, repo, forge.NewPullRequest{Title: "Fix it", Body: "body", Head: "ticketflow-pr/t1", Base: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if pr.Number != number || !pr.Draft || pr.URL == "" {
		t.Fatalf("opened %+v", pr)
	}
	found, err := f.FindOpen(ctx, repo, "ticketflow-pr/t1")
	if err != nil || found == nil || found.Number != pr.Number || !found.Draft {
		t.Fatalf("FindOpen = %+v, %v", found, err)
	}
	if err := f.Update(ctx, repo, *found, "Fix it (2)", "body 2"); err != nil {
		t.Fatal(err)
	}
	if err := f.SetStatus(ctx, repo, "abc123", forge.Status{State: forge.Failure, Context: "ticketflow/ci", Description: "CI failed", TargetURL: "http://x/tickets/t1"}); err != nil {
		t.Fatal(err)
	}
	if err := f.SetStatus(ctx, repo, "abc123", forge.Status{State: forge.Success, Context: "ticketflow/run"}); err != nil {
		t.Fatal(err)
	}
	found, _ = f.FindOpen(ctx, repo, "ticketflow-pr/t1")
	if !found.Draft {
		t.Fatalf("update took the draft away: %+v", found)
	}
	if err := f.MarkReady(ctx, repo, *found); err != nil {
		t.Fatal(err)
	}
	prs := srv.PRs()
	if len(prs) != number {
		t.Fatalf("%d PRs, want %d", len(prs), number)
	}
	if p := prs[number-1]; p.Draft || p.Body != "body 2" || !strings.HasSuffix(p.Title, "Fix it (2)") || strings.Contains(p.Title, "Draft") || strings.Contains(p.Title, "WIP") {
		t.Fatalf("PR = %+v", p)
	}
	sts := srv.Statuses()
	if len(sts) != 2 || sts[0].SHA != "abc123" || sts[0].Context != "ticketflow/ci" || sts[0].TargetURL != "http://x/tickets/t1" ||
		sts[0].State != failedState || sts[1].State != "success" {
		t.Fatalf("statuses = %+v (want %s, then success)", sts, failedState)
	}
	// A second Open of the same branch is the forge's refusal, with its message and status.
	_, err = f.Open(ctx, repo, forge.NewPullRequest{Title: "again", Head: "ticketflow-pr/t1", Base: "main"})
	var ae *forge.APIError
	if !errors.As(err, &ae) || ae.Status < 400 || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate open: %v", err)
	}
}

// Gitea's list of pull requests has no head filter: the client pages through the open ones
// (here 60 of other contributors' before its own) and tells its own by the head branch.
func TestGiteaClient(t *testing.T) {
	srv := forgetest.NewGitea(t, "acme/demo", token)
	for i := range 60 {
		srv.AddOpen(fmt.Sprintf("feature-%d", i))
	}
	f := forge.NewGitea(srv.API(), token, 5*time.Second)
	exercise(t, f, srv, forge.Repo{Host: "git.example.org", Path: "acme/demo"}, 61, "failure")
	if srv.Received("GET /api/v1/repos/acme/demo/pulls") < 6 { // three lookups, two pages each
		t.Fatalf("the lookups did not page: %q", srv.Requests())
	}
}

func TestGitHubClient(t *testing.T) {
	srv := forgetest.NewGitHub(t, "acme/demo", token)
	f := forge.NewGitHub(srv.API(), token, 5*time.Second)
	exercise(t, f, srv, forge.Repo{Host: "github.com", Path: "acme/demo"}, 1, "failure")
	if srv.Received("POST /graphql") == 0 {
		t.Fatalf("ready for review did not use the GraphQL mutation: %q", srv.Requests())
	}
}

func TestGitLabClient(t *testing.T) {
	srv := forgetest.NewGitLab(t, "team/sub/demo", token)
	f := forge.NewGitLab(srv.API(), token, 5*time.Second)
	exercise(t, f, srv, forge.Repo{Host: "gitlab.example.com", Path: "team/sub/demo"}, 1, "failed")
	if prs := srv.PRs(); prs[0].Title != "Fix it (2)" {
		t.Fatalf("title after ready = %q", prs[0].Title)
	}
}

func TestErrorsNameStatusAndMessageButNotTheToken(t *testing.T) {
	srv := forgetest.NewGitHub(t, "acme/demo", token)
	f := forge.NewGitHub(srv.API(), "wrong-"+token, 5*time.Second)
	_, err := f.FindOpen(context.Background(), forge.Repo{Host: "github.com", Path: "acme/demo"}, "b")
	var ae *forge.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || !strings.Contains(err.Error(), "Bad credentials") ||
		!strings.Contains(err.Error(), "GET /repos/acme/demo/pulls") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Fatalf("token in error: %v", err)
	}
	srv.FailNext(http.StatusBadGateway)
	err = forge.NewGitHub(srv.API(), token, 5*time.Second).SetStatus(context.Background(), forge.Repo{Path: "acme/demo"}, "s", forge.Status{State: forge.Pending})
	if !errors.As(err, &ae) || ae.Status != http.StatusBadGateway {
		t.Fatalf("err = %v", err)
	}
	// A forge that does not answer in time is an error, not a hang.
	dead := forge.NewGitLab("http://127.0.0.1:1/api/v4", token, time.Second)
	if _, err := dead.FindOpen(context.Background(), forge.Repo{Path: "a/b"}, "b"); err == nil || strings.Contains(err.Error(), token) {
		t.Fatalf("unreachable: %v", err)
	}
}

func TestResolver(t *testing.T) {
	policy, err := repourl.New(repourl.Config{Allowlist: []string{"github.com/acme/*"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := forge.NewResolver(config.Forge{
		Hosts:        []string{"git.example.org=forgejo", "gitlab.example.com=gitlab"},
		APIURLs:      []string{"github.com=http://127.0.0.1:9/"},
		Tokens:       []string{"gitlab.example.com/team/*=gl-token", "github.com/acme/special=special-token"},
		Repositories: []string{"file:///srv/git/app.git=https://github.com/acme/app"},
	}, "git-token", policy)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		url, kind, path string
		ok              bool
	}{
		{"https://github.com/acme/widgets.git", forge.GitHub, "acme/widgets", true}, // allow-listed: the git token
		{"https://github.com/acme/special", forge.GitHub, "acme/special", true},
		{"https://github.com/other/x", "", "", false}, // not allow-listed, no token of its own
		{"https://gitlab.example.com/team/sub/app", forge.GitLab, "team/sub/app", true},
		{"https://gitlab.example.com/elsewhere/app", "", "", false},
		{"https://git.example.org/o/r", "", "", false}, // Forgejo known, but no token
		{"https://unknown.example/o/r", "", "", false},
		{"file:///srv/git/app.git", forge.GitHub, "acme/app", true},
		{"file:///srv/git/other.git", "", "", false},
	} {
		tg, ok, why := r.Resolve(c.url)
		if ok != c.ok || (ok && (tg.Forge.Kind() != c.kind || tg.Repo.Path != c.path)) {
			t.Errorf("Resolve(%s) = %+v %v (%s)", c.url, tg, ok, why)
		}
		if !ok && why == "" {
			t.Errorf("Resolve(%s): no reason", c.url)
		}
	}
	if _, err := forge.NewResolver(config.Forge{Hosts: []string{"x=svn"}}, "", nil); err == nil {
		t.Error("unknown forge kind accepted")
	}
	_, err = forge.NewResolver(config.Forge{Tokens: []string{"secret-without-pattern"}}, "", nil)
	if err == nil || strings.Contains(err.Error(), "secret-without-pattern") {
		t.Errorf("bad token entry: %v", err)
	}
	if got := forge.DefaultAPI(forge.GitHub, "ghe.example.com"); got != "https://ghe.example.com/api/v3" {
		t.Errorf("GHE API = %s", got)
	}
}

func TestWebhookSignatures(t *testing.T) {
	body := []byte(`{"action":"submitted"}`)
	if err := forge.VerifyGitHub("s3cret", body, forgetest.SignGitHub("s3cret", body)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "sha256=00", forgetest.SignGitHub("other", body), "sha1=" + forge.Sign("s3cret", body)} {
		if err := forge.VerifyGitHub("s3cret", body, bad); !errors.Is(err, forge.ErrSignature) {
			t.Errorf("VerifyGitHub(%q) = %v", bad, err)
		}
	}
	if err := forge.VerifyGitHub("", body, forgetest.SignGitHub("", body)); err == nil {
		t.Error("an empty secret verifies")
	}
	if err := forge.VerifyGitea("s3cret", body, forge.Sign("s3cret", body)); err != nil {
		t.Fatal(err)
	}
	if err := forge.VerifyGitea("s3cret", append(body, ' '), forge.Sign("s3cret", body)); err == nil {
		t.Error("tampered body verifies")
	}
	if forge.VerifyGitLab("s3cret", "s3cret") != nil || forge.VerifyGitLab("s3cret", "s3cre") == nil || forge.VerifyGitLab("", "") == nil {
		t.Error("gitlab token compare")
	}
}

func TestParseWebhooks(t *testing.T) {
	r, err := forge.ParseGitHub("pull_request_review", forgetest.GitHubReview(7, "approved", "MEMBER", "bob", "LGTM", "https://github.com/acme/demo/pull/1", "ticketflow-pr/t1"))
	if err != nil || r.Decision != forge.Approve || !r.Trusted || r.ID != "github-review-7" || r.Reviewer != "bob" || r.HeadRef != "ticketflow-pr/t1" {
		t.Fatalf("%+v %v", r, err)
	}
	r, _ = forge.ParseGitHub("pull_request_review", forgetest.GitHubReview(8, "changes_requested", "NONE", "eve", "no", "u", "h"))
	if r.Decision != forge.RequestChanges || r.Trusted {
		t.Fatalf("%+v", r)
	}
	r, _ = forge.ParseGitHub("pull_request_review", forgetest.GitHubReview(9, "commented", "OWNER", "o", "hm", "u", "h"))
	if r.Decision != "" || r.Ignored == "" {
		t.Fatalf("%+v", r)
	}
	if r, _ := forge.ParseGitHub("ping", []byte(`{}`)); r.Ignored == "" {
		t.Fatalf("ping: %+v", r)
	}
	if _, err := forge.ParseGitHub("pull_request_review", []byte(`{`)); err == nil {
		t.Fatal("malformed body accepted")
	}
	r, err = forge.ParseGitLab("Merge Request Hook", "uuid-1", forgetest.GitLabApproval("bob", "https://gl/x/-/merge_requests/1", "ticketflow-pr/t1"))
	if err != nil || r.Decision != forge.Approve || r.ID != "gitlab-approval-uuid-1" {
		t.Fatalf("%+v %v", r, err)
	}
	r, _ = forge.ParseGitLab("Note Hook", "uuid-2", forgetest.GitLabNote(42, "bob", "/request-changes please add tests", "u", "ticketflow-pr/t1"))
	if r.Decision != forge.RequestChanges || r.Comment != "please add tests" || r.ID != "gitlab-note-42" {
		t.Fatalf("%+v", r)
	}
	r, _ = forge.ParseGitLab("Note Hook", "uuid-3", forgetest.GitLabNote(43, "bob", "/request-changesX", "u", "h"))
	if r.Decision != "" {
		t.Fatalf("%+v", r)
	}
	r, err = forge.ParseGitea("pull_request_review_rejected", "d-1", []byte(`{"pull_request":{"html_url":"u","head":{"ref":"ticketflow-pr/t1"}},"sender":{"login":"bob"},"review":{"type":"pull_request_review_rejected","content":"fix the tests"}}`))
	if err != nil || r.Decision != forge.RequestChanges || r.Comment != "fix the tests" || r.ID != "gitea-delivery-d-1" {
		t.Fatalf("%+v %v", r, err)
	}
	if id, ok := forge.TicketOfBranch("refs/heads/ticketflow-pr/abc"); !ok || id != "abc" {
		t.Fatalf("TicketOfBranch = %q %v", id, ok)
	}
	if _, ok := forge.TicketOfBranch("ticketflow/abc/1"); ok {
		t.Fatal("a run branch is no PR branch")
	}
}
