// Package forgetest runs fake forges for tests: a GitHub, a GitLab and a Gitea HTTP server speaking the
// documented endpoints ticketflow uses (pull/merge request list, create and update, commit
// statuses, GitHub's markPullRequestReadyForReview GraphQL mutation), keeping what they were
// told, and builders of signed review webhooks.
package forgetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ticketflow/ticketflow/libs/forge"
)

// PR is a pull (merge) request as the fake keeps it.
type PR struct {
	Number int
	NodeID string
	Title  string
	Body   string
	Head   string
	Base   string
	Draft  bool
	State  string // open / opened, closed
	URL    string
}

// Status is one commit status the fake received.
type Status struct {
	SHA, State, Context, Description, TargetURL string
}

// Server is one fake forge.
type Server struct {
	*httptest.Server
	// Token is the token every API request must carry.
	Token string
	// Repo is the one repository the fake hosts ("owner/name").
	Repo string
	kind string

	mu       sync.Mutex
	prs      []*PR
	statuses []Status
	requests []string
	// FailNext makes the next API request fail with this status (0: none).
	failNext int
}

// start serves s with its forge's handler until the test ends.
func start(t testing.TB, s *Server, handler func(*Server, http.ResponseWriter, *http.Request)) *Server {
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler(s, w, r) }))
	t.Cleanup(s.Close)
	return s
}

// NewGitHub starts a fake GitHub API for repo ("owner/name"), closed with the test.
func NewGitHub(t testing.TB, repo, token string) *Server {
	return start(t, &Server{Token: token, Repo: repo, kind: forge.GitHub}, (*Server).github)
}

// NewGitLab starts a fake GitLab API (base: URL + "/api/v4") for the project repo.
func NewGitLab(t testing.TB, repo, token string) *Server {
	return start(t, &Server{Token: token, Repo: repo, kind: forge.GitLab}, (*Server).gitlab)
}

// NewGitea starts a fake Gitea/Forgejo API (base: URL + "/api/v1") for repo ("owner/name").
func NewGitea(t testing.TB, repo, token string) *Server {
	return start(t, &Server{Token: token, Repo: repo, kind: forge.Gitea}, (*Server).gitea)
}

// API is the base a client is configured with.
func (s *Server) API() string {
	switch s.kind {
	case forge.GitLab:
		return s.URL + "/api/v4"
	case forge.Gitea:
		return s.URL + "/api/v1"
	}
	return s.URL
}

// AddOpen adds an open pull request from head that ticketflow did not open (another
// contributor's), so a client must tell it from its own.
func (s *Server) AddOpen(head string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.add(&PR{Title: "other " + head, Head: head, Base: "main", State: "open"}, "pulls")
}

// add keeps p as the next pull request: its number, node id and web page (under page).
func (s *Server) add(p *PR, page string) *PR {
	p.Number = len(s.prs) + 1
	p.NodeID = fmt.Sprintf("PR_node%d", p.Number)
	p.URL = fmt.Sprintf("%s/%s/%s/%d", s.URL, s.Repo, page, p.Number)
	s.prs = append(s.prs, p)
	return p
}

// PRs is a copy of the pull requests.
func (s *Server) PRs() []PR {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PR, len(s.prs))
	for i, p := range s.prs {
		out[i] = *p
	}
	return out
}

// Statuses are the commit statuses received, in order.
func (s *Server) Statuses() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Status(nil), s.statuses...)
}

// Requests are "METHOD path" of every request received, in order.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// Received is how many requests were exactly req ("METHOD path", as Requests lists them).
func (s *Server) Received(req string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r == req {
			n++
		}
	}
	return n
}

// FailNext makes the next request answer status with a forge-shaped error message.
func (s *Server) FailNext(status int) {
	s.mu.Lock()
	s.failNext = status
	s.mu.Unlock()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// pre records the request and checks failures and auth; false means answered.
func (s *Server) pre(w http.ResponseWriter, r *http.Request, authorized bool) bool {
	s.requests = append(s.requests, r.Method+" "+r.URL.EscapedPath())
	if s.failNext != 0 {
		st := s.failNext
		s.failNext = 0
		writeJSON(w, st, map[string]any{"message": "injected failure"})
		return false
	}
	if !authorized {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Bad credentials"})
		return false
	}
	return true
}

func decode(w http.ResponseWriter, r *http.Request, into any) bool {
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, into); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "Problems parsing JSON"})
		return false
	}
	return true
}

func (s *Server) githubPR(p *PR) map[string]any {
	return map[string]any{"number": p.Number, "node_id": p.NodeID, "html_url": p.URL, "title": p.Title, "body": p.Body,
		"draft": p.Draft, "state": p.State, "head": map[string]any{"ref": p.Head}, "base": map[string]any{"ref": p.Base}}
}

// github serves /repos/{o}/{r}/pulls[/{n}], /repos/{o}/{r}/statuses/{sha} and /graphql.
func (s *Server) github(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.pre(w, r, r.Header.Get("Authorization") == "Bearer "+s.Token) {
		return
	}
	owner, _, _ := strings.Cut(s.Repo, "/")
	prefix := "/repos/" + s.Repo
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && path == "/graphql":
		var q struct {
			Query     string            `json:"query"`
			Variables map[string]string `json:"variables"`
		}
		if !decode(w, r, &q) {
			return
		}
		if !strings.Contains(q.Query, "markPullRequestReadyForReview") {
			writeJSON(w, http.StatusOK, map[string]any{"errors": []map[string]any{{"message": "unsupported query"}}})
			return
		}
		for _, p := range s.prs {
			if p.NodeID == q.Variables["id"] {
				p.Draft = false
				writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"markPullRequestReadyForReview": map[string]any{
					"pullRequest": map[string]any{"isDraft": false}}}})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"errors": []map[string]any{{"type": "NOT_FOUND", "message": "Could not resolve to a node with the global id of '" + q.Variables["id"] + "'"}}})
	case !strings.HasPrefix(path, prefix+"/"):
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
	case r.Method == http.MethodGet && path == prefix+"/pulls":
		out := []map[string]any{}
		head := r.URL.Query().Get("head")
		for _, p := range s.prs {
			if p.State == "open" && (head == "" || head == owner+":"+p.Head) {
				out = append(out, s.githubPR(p))
			}
		}
		writeJSON(w, http.StatusOK, out)
	case r.Method == http.MethodPost && path == prefix+"/pulls":
		var in struct {
			Title, Body, Head, Base string
			Draft                   bool
		}
		if !decode(w, r, &in) {
			return
		}
		for _, p := range s.prs {
			if p.State == "open" && p.Head == in.Head {
				writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed",
					"errors": []map[string]any{{"message": "A pull request already exists for " + owner + ":" + in.Head + "."}}})
				return
			}
		}
		if in.Title == "" || in.Head == "" || in.Base == "" {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed"})
			return
		}
		p := s.add(&PR{Title: in.Title, Body: in.Body, Head: in.Head, Base: in.Base, Draft: in.Draft, State: "open"}, "pull")
		writeJSON(w, http.StatusCreated, s.githubPR(p))
	case r.Method == http.MethodPatch && strings.HasPrefix(path, prefix+"/pulls/"):
		s.editPR(w, r, strings.TrimPrefix(path, prefix+"/pulls/"), "Not Found", "body", nil, s.githubPR, http.StatusOK)
	case r.Method == http.MethodPost && strings.HasPrefix(path, prefix+"/statuses/"):
		s.addStatus(w, r, strings.TrimPrefix(path, prefix+"/statuses/"), "context", http.StatusUnprocessableEntity,
			map[string]any{"message": "Validation Failed"}, "pending", "success", "failure", "error")
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
	}
}

func (s *Server) giteaPR(p *PR) map[string]any {
	return map[string]any{"number": p.Number, "html_url": p.URL, "title": p.Title, "body": p.Body, "state": p.State,
		"draft": giteaDraft(p.Title), "head": map[string]any{"ref": p.Head}, "base": map[string]any{"ref": p.Base}}
}

// gitea serves /api/v1/repos/{o}/{r}/pulls[/{n}] (the list paged by page and limit, with no
// head filter; a work-in-progress PR is one whose title starts "WIP: ") and
// /api/v1/repos/{o}/{r}/statuses/{sha}, with "Authorization: token <t>".
func (s *Server) gitea(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.pre(w, r, r.Header.Get("Authorization") == "token "+s.Token) {
		return
	}
	prefix := "/api/v1/repos/" + s.Repo
	path := r.URL.Path
	switch {
	case r.Method == http.MethodGet && path == prefix+"/pulls":
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		page, limit = max(page, 1), min(max(limit, 1), 50)
		var open []map[string]any
		for _, p := range s.prs {
			if r.URL.Query().Get("state") != "open" || p.State == "open" {
				open = append(open, s.giteaPR(p))
			}
		}
		from, to := min((page-1)*limit, len(open)), min(page*limit, len(open))
		writeJSON(w, http.StatusOK, append([]map[string]any{}, open[from:to]...))
	case r.Method == http.MethodPost && path == prefix+"/pulls":
		var in struct{ Title, Body, Head, Base string }
		if !decode(w, r, &in) {
			return
		}
		for _, p := range s.prs {
			if p.State == "open" && p.Head == in.Head && p.Base == in.Base {
				writeJSON(w, http.StatusConflict, map[string]any{"message": fmt.Sprintf("pull request already exists for these targets [id: %d, issue_id: %d, head_repo_id: 1, base_repo_id: 1, head_branch: %s, base_branch: %s]", p.Number, p.Number, in.Head, in.Base)})
				return
			}
		}
		if in.Title == "" || in.Head == "" || in.Base == "" {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "[Title]: Required"})
			return
		}
		p := s.add(&PR{Title: in.Title, Body: in.Body, Head: in.Head, Base: in.Base, Draft: giteaDraft(in.Title), State: "open"}, "pulls")
		writeJSON(w, http.StatusCreated, s.giteaPR(p))
	case r.Method == http.MethodPatch && strings.HasPrefix(path, prefix+"/pulls/"):
		s.editPR(w, r, strings.TrimPrefix(path, prefix+"/pulls/"), "The target couldn't be found.", "body", giteaDraft, s.giteaPR, http.StatusCreated)
	case r.Method == http.MethodPost && strings.HasPrefix(path, prefix+"/statuses/"):
		s.addStatus(w, r, strings.TrimPrefix(path, prefix+"/statuses/"), "context", http.StatusUnprocessableEntity,
			map[string]any{"message": "invalid state"}, "pending", "success", "error", "failure", "warning")
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
	}
}

// gitlabDraft and giteaDraft tell a draft by its title, as those forges do.
func gitlabDraft(title string) bool { return strings.HasPrefix(strings.ToLower(title), "draft:") }
func giteaDraft(title string) bool  { return strings.HasPrefix(title, "WIP: ") }

// editPR applies a pull request update (its title and, under bodyField, its body); isDraft,
// when the forge tells drafts by title, recomputes the draft flag from the new title.
func (s *Server) editPR(w http.ResponseWriter, r *http.Request, number, notFound, bodyField string,
	isDraft func(string) bool, render func(*PR) map[string]any, status int) {
	p := s.byNumber(number)
	if p == nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"message": notFound})
		return
	}
	var in map[string]string
	if !decode(w, r, &in) {
		return
	}
	if v, ok := in["title"]; ok {
		p.Title = v
		if isDraft != nil {
			p.Draft = isDraft(v)
		}
	}
	if v, ok := in[bodyField]; ok {
		p.Body = v
	}
	writeJSON(w, status, render(p))
}

// addStatus records a commit status whose state is one of states (its context under
// contextField), or answers badStatus with badBody, as the forge refuses an unknown state.
func (s *Server) addStatus(w http.ResponseWriter, r *http.Request, sha, contextField string, badStatus int, badBody map[string]any, states ...string) {
	var in map[string]string
	if !decode(w, r, &in) {
		return
	}
	if !slices.Contains(states, in["state"]) {
		writeJSON(w, badStatus, badBody)
		return
	}
	s.statuses = append(s.statuses, Status{SHA: sha, State: in["state"], Context: in[contextField], Description: in["description"], TargetURL: in["target_url"]})
	writeJSON(w, http.StatusCreated, in)
}

func (s *Server) byNumber(n string) *PR {
	i, err := strconv.Atoi(n)
	if err != nil || i < 1 || i > len(s.prs) {
		return nil
	}
	return s.prs[i-1]
}

func (s *Server) gitlabMR(p *PR) map[string]any {
	return map[string]any{"iid": p.Number, "id": 1000 + p.Number, "web_url": p.URL, "title": p.Title, "description": p.Body,
		"draft": p.Draft, "state": p.State, "source_branch": p.Head, "target_branch": p.Base}
}

// gitlab serves /api/v4/projects/:id/merge_requests[/:iid] and /api/v4/projects/:id/statuses/:sha
// (:id the URL-encoded project path). A title starting with "Draft:" makes a draft.
func (s *Server) gitlab(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.pre(w, r, r.Header.Get("PRIVATE-TOKEN") == s.Token) {
		return
	}
	prefix := "/api/v4/projects/" + url.PathEscape(s.Repo)
	path := r.URL.EscapedPath()
	switch {
	case !strings.HasPrefix(path, prefix+"/"):
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "404 Project Not Found"})
	case r.Method == http.MethodGet && path == prefix+"/merge_requests":
		out := []map[string]any{}
		q := r.URL.Query()
		for _, p := range s.prs {
			if (q.Get("state") == "" || q.Get("state") == p.State) && (q.Get("source_branch") == "" || q.Get("source_branch") == p.Head) {
				out = append(out, s.gitlabMR(p))
			}
		}
		writeJSON(w, http.StatusOK, out)
	case r.Method == http.MethodPost && path == prefix+"/merge_requests":
		var in struct {
			SourceBranch string `json:"source_branch"`
			TargetBranch string `json:"target_branch"`
			Title        string `json:"title"`
			Description  string `json:"description"`
		}
		if !decode(w, r, &in) {
			return
		}
		for _, p := range s.prs {
			if p.State == "opened" && p.Head == in.SourceBranch {
				writeJSON(w, http.StatusConflict, map[string]any{"message": []string{"Another open merge request already exists for this source branch: !" + strconv.Itoa(p.Number)}})
				return
			}
		}
		if in.Title == "" || in.SourceBranch == "" || in.TargetBranch == "" {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "title is missing"})
			return
		}
		p := s.add(&PR{Title: in.Title, Body: in.Description, Head: in.SourceBranch, Base: in.TargetBranch,
			Draft: gitlabDraft(in.Title), State: "opened"}, "-/merge_requests")
		writeJSON(w, http.StatusCreated, s.gitlabMR(p))
	case r.Method == http.MethodPost && strings.HasPrefix(path, prefix+"/statuses/"):
		s.addStatus(w, r, strings.TrimPrefix(path, prefix+"/statuses/"), "name", http.StatusBadRequest,
			map[string]any{"error": "state does not have a valid value"}, "pending", "running", "success", "failed", "canceled")
	case r.Method == http.MethodPut && strings.HasPrefix(path, prefix+"/merge_requests/"):
		s.editPR(w, r, strings.TrimPrefix(path, prefix+"/merge_requests/"), "404 Not found", "description", gitlabDraft, s.gitlabMR, http.StatusOK)
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "404 Not Found"})
	}
}

// GitHubReview is the body of a pull_request_review webhook delivery.
func GitHubReview(reviewID int64, state, association, login, body, prURL, headRef string) []byte {
	b, _ := json.Marshal(map[string]any{
		"action": "submitted",
		"review": map[string]any{"id": reviewID, "state": state, "body": body, "author_association": association,
			"user": map[string]any{"login": login}},
		"pull_request": map[string]any{"html_url": prURL, "head": map[string]any{"ref": headRef}},
	})
	return b
}

// SignGitHub is the X-Hub-Signature-256 of body.
func SignGitHub(secret string, body []byte) string { return "sha256=" + forge.Sign(secret, body) }

// GitLabApproval is the body of a Merge Request Hook delivery with action approved.
func GitLabApproval(login, mrURL, sourceBranch string) []byte {
	b, _ := json.Marshal(map[string]any{"object_kind": "merge_request", "user": map[string]any{"username": login},
		"object_attributes": map[string]any{"action": "approved", "url": mrURL, "source_branch": sourceBranch}})
	return b
}

// GitLabNote is the body of a Note Hook delivery on a merge request.
func GitLabNote(noteID int64, login, note, mrURL, sourceBranch string) []byte {
	b, _ := json.Marshal(map[string]any{"object_kind": "note", "user": map[string]any{"username": login},
		"object_attributes": map[string]any{"id": noteID, "note": note, "noteable_type": "MergeRequest"},
		"merge_request":     map[string]any{"url": mrURL, "source_branch": sourceBranch}})
	return b
}
