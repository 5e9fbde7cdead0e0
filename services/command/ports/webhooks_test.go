package ports_test

import (
	"context"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/forge"
	"github.com/ticketflow/ticketflow/libs/forge/forgetest"
	"github.com/ticketflow/ticketflow/services/command/internal/commandtest"
)

const hookSecret = "forge-hook-secret"

// completedWithPR starts a run of a new ticket and appends what a processor would for a run
// that completes with its pull request, then waits for the ticket to be COMPLETED with it.
func completedWithPR(t *testing.T, e *commandtest.Env, prURL string) (ticketID, runID string) {
	t.Helper()
	ticketID = e.Create(e.Alice, `{"title":"pr","repository_url":"https://github.com/acme/demo"}`)
	r := e.Call(e.Alice, "POST", "/api/tickets/processing/start", `{"ticket_id":"`+ticketID+`"}`)
	runID, _ = r.Body["run_id"].(string)
	var envs []events.Envelope
	for _, p := range []events.Payload{&events.RunStartedData{Iteration: 1, MaxIterations: 3, Executor: "real"},
		&events.PullRequestOpenedData{URL: prURL, Number: 1, Forge: "github", Branch: forge.Branch(ticketID)},
		&events.RunCompletedData{Iteration: 1, Message: "done"}} {
		envs = append(envs, events.MustNew(ticketID, runID, "processor", p))
	}
	if _, err := e.Broker.Producer.Append(context.Background(), envs...); err != nil {
		t.Fatal(err)
	}
	waitTicket(t, e, ticketID, func(b map[string]any) bool { return b["status"] == "COMPLETED" && b["pull_request_url"] == prURL })
	return ticketID, runID
}

func waitTicket(t *testing.T, e *commandtest.Env, id string, cond func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := e.Call(e.Alice, "GET", "/api/tickets/"+id, "")
		if cond(r.Body) {
			return r.Body
		}
		if time.Now().After(deadline) {
			t.Fatalf("ticket %s: %v", id, r.Body)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

func count(e *commandtest.Env, ticketID string, typ events.Type) int {
	n := 0
	for _, env := range e.LogEnvelopes() {
		if env.TicketID == ticketID && env.Type == typ {
			n++
		}
	}
	return n
}

// webhookEnv is the command service with forge webhooks on (signed with hookSecret).
func webhookEnv(t *testing.T) *commandtest.Env {
	cfg := commandtest.DefaultConfig
	cfg.ForgeWebhookSecret = hookSecret
	return commandtest.New(t, cfg, 0)
}

func githubHook(e *commandtest.Env, body []byte, signature, delivery string) commandtest.Reply {
	return e.Call("", "POST", "/api/forge/webhooks/github", string(body),
		"X-GitHub-Event", "pull_request_review", "X-GitHub-Delivery", delivery, "X-Hub-Signature-256", signature)
}

// GitHub: a bad signature is 401; a non-member's approval is ignored; a member's approval
// validates the ticket; the replayed delivery is 200 and appends nothing.
func TestGitHubReviewWebhook(t *testing.T) {
	e := webhookEnv(t)
	prURL := "https://github.com/acme/demo/pull/1"
	ticket, _ := completedWithPR(t, e, prURL)

	approve := forgetest.GitHubReview(101, "approved", "MEMBER", "bob", "LGTM", prURL, forge.Branch(ticket))
	if r := githubHook(e, approve, forgetest.SignGitHub("wrong-secret", approve), "d1"); r.Status != 401 {
		t.Fatalf("bad signature: %d %v", r.Status, r.Body)
	}
	if r := githubHook(e, approve, "", "d1"); r.Status != 401 {
		t.Fatalf("no signature: %d %v", r.Status, r.Body)
	}
	outsider := forgetest.GitHubReview(100, "approved", "NONE", "mallory", "ship it", prURL, forge.Branch(ticket))
	if r := githubHook(e, outsider, forgetest.SignGitHub(hookSecret, outsider), "d0"); r.Status != 200 || r.Body["accepted"] != false || r.Body["ignored"] == nil {
		t.Fatalf("non-member review: %d %v", r.Status, r.Body)
	}
	other := forgetest.GitHubReview(99, "approved", "OWNER", "bob", "", "https://github.com/acme/demo/pull/9", forge.Branch(ticket))
	if r := githubHook(e, other, forgetest.SignGitHub(hookSecret, other), "d-1"); r.Status != 200 || r.Body["accepted"] != false {
		t.Fatalf("review of another PR: %d %v", r.Status, r.Body)
	}
	if n := count(e, ticket, events.ValidationApproved); n != 0 {
		t.Fatalf("%d ValidationApproved before a member's review", n)
	}

	r := githubHook(e, approve, forgetest.SignGitHub(hookSecret, approve), "d1")
	if r.Status != 200 || r.Body["accepted"] != true || r.Body["decision"] != "approve" {
		t.Fatalf("approving review: %d %v", r.Status, r.Body)
	}
	waitTicket(t, e, ticket, func(b map[string]any) bool { return b["status"] == "VALIDATED" })
	// The same delivery again (a replay, or GitHub's redelivery).
	r = githubHook(e, approve, forgetest.SignGitHub(hookSecret, approve), "d1")
	if r.Status != 200 || r.Body["replayed"] != true {
		t.Fatalf("replayed delivery: %d %v", r.Status, r.Body)
	}
	if n := count(e, ticket, events.ValidationApproved); n != 1 {
		t.Fatalf("%d ValidationApproved events, want 1", n)
	}
	var by string
	for _, env := range e.LogEnvelopes() {
		if env.TicketID == ticket && env.Type == events.ValidationApproved {
			p, _ := env.Decode()
			by = p.(*events.ValidationApprovedData).ApprovedBy
		}
	}
	if by != "github:bob" {
		t.Errorf("approved by %q", by)
	}
}

// GitHub "changes requested" with a body → ChangesRequested with that comment and the next run.
func TestGitHubChangesRequestedWebhook(t *testing.T) {
	e := webhookEnv(t)
	prURL := "https://github.com/acme/demo/pull/1"
	ticket, run := completedWithPR(t, e, prURL)
	body := forgetest.GitHubReview(202, "changes_requested", "COLLABORATOR", "carol", "Please handle the empty case.", prURL, forge.Branch(ticket))
	if r := githubHook(e, body, forgetest.SignGitHub(hookSecret, body), "d2"); r.Status != 200 || r.Body["accepted"] != true {
		t.Fatalf("changes requested: %d %v", r.Status, r.Body)
	}
	var comment string
	for _, env := range e.LogEnvelopes() {
		if env.Type == events.ChangesRequested && env.RunID == run {
			p, _ := env.Decode()
			comment = p.(*events.ChangesRequestedData).Comment
		}
	}
	if comment != "Please handle the empty case." {
		t.Fatalf("ChangesRequested comment %q", comment)
	}
	waitTicket(t, e, ticket, func(b map[string]any) bool { return b["status"] == "PENDING" && b["current_run_id"] != run })
}

// GitLab: the X-Gitlab-Token must be the secret; a /request-changes note asks for changes;
// Gitea: an approval signed with X-Gitea-Signature approves.
func TestGitLabAndGiteaWebhooks(t *testing.T) {
	e := webhookEnv(t)
	prURL := "https://github.com/acme/demo/pull/1" // the projection's URL is all that matters here
	ticket, run := completedWithPR(t, e, prURL)
	note := forgetest.GitLabNote(7, "dave", "/request-changes rename the function", prURL, forge.Branch(ticket))
	if r := e.Call("", "POST", "/api/forge/webhooks/gitlab", string(note), "X-Gitlab-Event", "Note Hook", "X-Gitlab-Token", "nope"); r.Status != 401 {
		t.Fatalf("bad gitlab token: %d %v", r.Status, r.Body)
	}
	r := e.Call("", "POST", "/api/forge/webhooks/gitlab", string(note), "X-Gitlab-Event", "Note Hook", "X-Gitlab-Token", hookSecret, "X-Gitlab-Event-UUID", "u1")
	if r.Status != 200 || r.Body["accepted"] != true || r.Body["decision"] != "request_changes" {
		t.Fatalf("gitlab note: %d %v", r.Status, r.Body)
	}
	next := waitTicket(t, e, ticket, func(b map[string]any) bool { return b["current_run_id"] != run })["current_run_id"].(string)
	if _, err := e.Broker.Producer.Append(context.Background(),
		events.MustNew(ticket, next, "processor", &events.RunStartedData{Iteration: 2, MaxIterations: 3, Executor: "real"}),
		events.MustNew(ticket, next, "processor", &events.PullRequestOpenedData{URL: prURL, Number: 1, Forge: "github", Reused: true}),
		events.MustNew(ticket, next, "processor", &events.RunCompletedData{Iteration: 2, Message: "done"})); err != nil {
		t.Fatal(err)
	}
	waitTicket(t, e, ticket, func(b map[string]any) bool { return b["status"] == "COMPLETED" })
	body := []byte(`{"action":"reviewed","pull_request":{"html_url":"` + prURL + `","head":{"ref":"` + forge.Branch(ticket) + `"}},"sender":{"login":"erin"},"review":{"type":"pull_request_review_approved","content":"ok"}}`)
	if r := e.Call("", "POST", "/api/forge/webhooks/gitea", string(body), "X-Gitea-Event", "pull_request_review_approved", "X-Gitea-Delivery", "g1",
		"X-Gitea-Signature", forge.Sign("wrong", body)); r.Status != 401 {
		t.Fatalf("bad gitea signature: %d %v", r.Status, r.Body)
	}
	r = e.Call("", "POST", "/api/forge/webhooks/gitea", string(body), "X-Gitea-Event", "pull_request_review_approved", "X-Gitea-Delivery", "g1",
		"X-Gitea-Signature", forge.Sign(hookSecret, body))
	if r.Status != 200 || r.Body["accepted"] != true {
		t.Fatalf("gitea approval: %d %v", r.Status, r.Body)
	}
	waitTicket(t, e, ticket, func(b map[string]any) bool { return b["status"] == "VALIDATED" })
}

// Without a secret the endpoint does not exist.
func TestForgeWebhooksOffWithoutSecret(t *testing.T) {
	e := commandtest.New(t, commandtest.DefaultConfig, 0)
	if r := e.Call("", "POST", "/api/forge/webhooks/github", `{}`, "X-GitHub-Event", "ping"); r.Status != 404 {
		t.Fatalf("%d %v", r.Status, r.Body)
	}
}

// A review while the run is still in progress decides nothing, nor does its redelivery after
// the run completed (the refusal is the review's answer); a later review does.
func TestReviewBeforeCompletionDecidesNothing(t *testing.T) {
	e := webhookEnv(t)
	prURL := "https://github.com/acme/demo/pull/1"
	ticket := e.Create(e.Alice, `{"title":"pr","repository_url":"https://github.com/acme/demo"}`)
	run, _ := e.Call(e.Alice, "POST", "/api/tickets/processing/start", `{"ticket_id":"`+ticket+`"}`).Body["run_id"].(string)
	if _, err := e.Broker.Producer.Append(context.Background(),
		events.MustNew(ticket, run, "processor", &events.RunStartedData{Iteration: 1, MaxIterations: 3, Executor: "real"}),
		events.MustNew(ticket, run, "processor", &events.PullRequestOpenedData{URL: prURL, Number: 1, Forge: "github"})); err != nil {
		t.Fatal(err)
	}
	waitTicket(t, e, ticket, func(b map[string]any) bool { return b["pull_request_url"] == prURL })
	early := forgetest.GitHubReview(55, "approved", "OWNER", "bob", "", prURL, forge.Branch(ticket))
	if r := githubHook(e, early, forgetest.SignGitHub(hookSecret, early), "d-early"); r.Status != 200 || r.Body["accepted"] != false {
		t.Fatalf("review during the run: %d %v", r.Status, r.Body)
	}
	if _, err := e.Broker.Producer.Append(context.Background(),
		events.MustNew(ticket, run, "processor", &events.RunCompletedData{Iteration: 1, Message: "done"})); err != nil {
		t.Fatal(err)
	}
	waitTicket(t, e, ticket, func(b map[string]any) bool { return b["status"] == "COMPLETED" })
	if r := githubHook(e, early, forgetest.SignGitHub(hookSecret, early), "d-early"); r.Status != 200 || r.Body["accepted"] != false {
		t.Fatalf("redelivered early review: %d %v", r.Status, r.Body)
	}
	later := forgetest.GitHubReview(56, "approved", "OWNER", "bob", "", prURL, forge.Branch(ticket))
	if r := githubHook(e, later, forgetest.SignGitHub(hookSecret, later), "d-later"); r.Status != 200 || r.Body["accepted"] != true {
		t.Fatalf("review after completion: %d %v", r.Status, r.Body)
	}
	waitTicket(t, e, ticket, func(b map[string]any) bool { return b["status"] == "VALIDATED" })
}
