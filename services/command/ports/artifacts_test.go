package ports_test

import (
	"context"
	"github.com/ticketflow/ticketflow/api/apitest"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ticketflow/ticketflow/services/command/internal/commandtest"
)

// A run's artifacts are listed and downloaded by the ticket's owner and admins; anyone else,
// and any unknown run or name, gets 404.
func TestRunArtifacts(t *testing.T) {
	e := newEnv(t)
	ticket := e.Create(e.Alice, `{"title":"artifacts","repository_url":"https://github.com/a/b.git"}`)
	run := e.StartProjected(e.Alice, ticket)

	empty := e.Call(e.Alice, "GET", "/api/runs/"+run+"/artifacts", "")
	if list, _ := empty.Body["artifacts"].([]any); empty.Status != 200 || list == nil || len(list) != 0 {
		t.Fatalf("no artifacts yet: %d %v", empty.Status, empty.Body)
	}
	content := "line 1\nligne 2 é\n"
	if _, err := e.DB.Exec(context.Background(), `INSERT INTO run_artifacts (run_id, ticket_id, name, content, size_bytes, lines)
		VALUES ($1, $2, 'ci-1.log', $3, $4, 2)`, run, ticket, []byte(content), len(content)); err != nil {
		t.Fatal(err)
	}

	for _, who := range []struct {
		name, token string
	}{{"owner", e.Alice}, {"admin", e.Admin}} {
		r := e.Call(who.token, "GET", "/api/runs/"+run+"/artifacts", "")
		list, _ := r.Body["artifacts"].([]any)
		if r.Status != 200 || len(list) != 1 {
			t.Fatalf("%s list: %d %v", who.name, r.Status, r.Body)
		}
		a := list[0].(map[string]any)
		if a["name"] != "ci-1.log" || a["size_bytes"] != float64(len(content)) || a["lines"] != float64(2) || a["created_at"] == nil {
			t.Errorf("%s listed %v", who.name, a)
		}
		status, header, body := raw(e, who.token, "/api/runs/"+run+"/artifacts/ci-1.log")
		if status != 200 || body != content || header("Content-Type") != "text/plain; charset=utf-8" ||
			header("Content-Disposition") != `attachment; filename="ci-1.log"` {
			t.Errorf("%s download: %d %q %q %q", who.name, status, body, header("Content-Type"), header("Content-Disposition"))
		}
	}

	for _, tc := range []struct{ name, token, path string }{
		{"other user lists", e.Bob, "/api/runs/" + run + "/artifacts"},
		{"other user downloads", e.Bob, "/api/runs/" + run + "/artifacts/ci-1.log"},
		{"unknown run", e.Alice, "/api/runs/no-such-run/artifacts"},
		{"unknown name", e.Alice, "/api/runs/" + run + "/artifacts/ci-2.log"},
		{"path in name", e.Alice, "/api/runs/" + run + "/artifacts/..%2Fci-1.log"},
	} {
		if status, _, body := raw(e, tc.token, tc.path); status != 404 || strings.Contains(body, "line 1") {
			t.Errorf("%s: %d %q, want 404", tc.name, status, body)
		}
	}
	if status, _, _ := raw(e, "", "/api/runs/"+run+"/artifacts/ci-1.log"); status != 401 {
		t.Errorf("anonymous download: %d, want 401", status)
	}
}

// raw makes a GET and returns the status, a header getter and the body as text.
func raw(e *commandtest.Env, token, path string) (int, func(string) string, string) {
	e.T.Helper()
	req := httptest.NewRequest("GET", path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.Web.Test(req, 30000)
	if err != nil {
		e.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	apitest.ValidateResponse(e.T, req, resp, b)
	return resp.StatusCode, resp.Header.Get, string(b)
}
