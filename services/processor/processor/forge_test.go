package processor

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/forge"
	"github.com/ticketflow/ticketflow/libs/forge/forgetest"
	"github.com/ticketflow/ticketflow/libs/gittest"
)

// A run on a repository whose forge is a fake GitHub: the first push opens one draft PR from
// the ticket's PR branch, the failed and the passed CI become commit statuses, COMPLETED marks
// the PR ready; the follow-up run after a review finds the same PR (no second one) and updates it.
func TestRealRunOpensAndFollowsItsPullRequest(t *testing.T) {
	llmSrv := &fakeLLM{}
	srv := httptest.NewServer(llmSrv)
	defer srv.Close()
	gh := forgetest.NewGitHub(t, "acme/demo", "gh-token-secret")
	url, bare := gittest.Origin(t, map[string]string{"README.md": "# demo\n", "ci.sh": ciScript})
	cfg := realConfig(t)
	cfg.Real.AnthropicKey, cfg.Real.AnthropicBaseURL, cfg.Real.AnthropicModel = "sk-ant-e2e", srv.URL, "claude-test"
	cfg.Real.Forge.Repositories = []string{url + "=https://github.com/acme/demo"}
	cfg.Real.Forge.Tokens = []string{"github.com/acme/*=gh-token-secret"}
	cfg.Real.Forge.APIURLs = []string{"github.com=" + gh.API()}
	cfg.Real.Forge.PublicURL = "https://tf.example"
	h := newHarness(t, cfg)
	ticket, run := h.ticket(url, "sh ci.sh")
	term, evs := h.waitCompleted(run)

	prs := gh.PRs()
	if len(prs) != 1 {
		t.Fatalf("PRs = %+v", prs)
	}
	pr := prs[0]
	if pr.Draft || pr.Head != forge.Branch(ticket) || pr.Base != "main" || pr.Title != "ticketflow: Add a greeting" ||
		!strings.Contains(pr.Body, "https://tf.example/tickets/"+ticket) || !strings.Contains(pr.Body, "Create greeting.txt saying hello.") {
		t.Errorf("PR = %+v", pr)
	}
	final := payload[*events.RunCompletedData](t, term)
	head := gittest.Git(t, bare, "rev-parse", forge.Branch(ticket))
	if want := gittest.Git(t, bare, "rev-parse", final.Branch); head != want {
		t.Errorf("PR branch at %s, want the last iteration's commit %s", head, want)
	}
	var got []string
	for _, st := range gh.Statuses() {
		got = append(got, st.Context+"="+st.State)
		if st.TargetURL != "https://tf.example/tickets/"+ticket {
			t.Errorf("status target %q", st.TargetURL)
		}
	}
	want := "ticketflow/run=pending ticketflow/ci=failure ticketflow/run=pending ticketflow/ci=success ticketflow/run=success"
	if strings.Join(got, " ") != want {
		t.Errorf("statuses %q, want %q", strings.Join(got, " "), want)
	}
	if sts := gh.Statuses(); sts[len(sts)-1].SHA != head {
		t.Errorf("final status on %s, want %s", sts[len(sts)-1].SHA, head)
	}
	var opened []*events.PullRequestOpenedData
	for _, ev := range evs {
		if ev.Type == events.PullRequestOpened {
			opened = append(opened, payload[*events.PullRequestOpenedData](t, ev))
		}
	}
	if len(opened) != 1 || opened[0].URL != pr.URL || opened[0].Number != 1 || opened[0].Forge != "github" || opened[0].Reused {
		t.Errorf("PullRequestOpened = %+v", opened)
	}
	if all := dump(evs); strings.Contains(all, "gh-token-secret") {
		t.Errorf("forge token in events:\n%s", all)
	}

	// A review asks for changes: the follow-up run pushes to the same PR.
	next := uuid.NewString()
	h.append(events.MustNew(ticket, run, "github:bob", &events.ChangesRequestedData{RequestedBy: "github:bob", Comment: "say it twice", NextRunID: next}),
		events.MustNew(ticket, next, "github:bob", &events.ProcessingRequestedData{RequestedBy: "github:bob", Reason: "changes_requested"}))
	h.waitTerminal(next)
	if prs := gh.PRs(); len(prs) != 1 {
		t.Fatalf("the follow-up run opened another PR: %+v", prs)
	}
	var reused bool
	for _, ev := range h.runEvents(next) {
		if ev.Type == events.PullRequestOpened {
			p := payload[*events.PullRequestOpenedData](t, ev)
			reused = p.Reused && p.Number == 1
		}
	}
	if !reused {
		t.Errorf("follow-up run did not announce the reused PR:\n%s", dump(h.runEvents(next)))
	}
	for _, r := range gh.Requests() {
		if strings.HasPrefix(r, "POST /repos/acme/demo/pulls") && r != "POST /repos/acme/demo/pulls" {
			t.Errorf("unexpected request %s", r)
		}
	}
}
