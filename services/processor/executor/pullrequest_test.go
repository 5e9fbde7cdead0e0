package executor

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/forge"
	"github.com/ticketflow/ticketflow/libs/forge/forgetest"
	"github.com/ticketflow/ticketflow/libs/gittest"
	"github.com/ticketflow/ticketflow/libs/repourl"
	"github.com/ticketflow/ticketflow/services/processor/ci"
	"github.com/ticketflow/ticketflow/services/processor/llm"
)

// commit_changes retried after a crash that followed the PR's opening (its state never saved)
// finds the branch's open PR: one PR, announced again as reused. A forge that fails costs a
// WARNING line, not the step.
func TestCommitChangesRetryDoesNotOpenASecondPR(t *testing.T) {
	gh := forgetest.NewGitHub(t, "acme/demo", "tok")
	url, _ := gittest.Origin(t, map[string]string{"README.md": "x\n"})
	cfg := RealConfig{WorkDir: t.TempDir(), Repos: repourl.Config{FileRoot: filepath.Dir(t.TempDir())}}
	cfg.Forge.Repositories = []string{url + "=https://github.com/acme/demo"}
	cfg.Forge.Tokens = []string{"github.com/acme/demo=tok"}
	cfg.Forge.APIURLs = []string{"github.com=" + gh.API()}
	x, err := NewReal(cfg, slog.New(slog.DiscardHandler), RealDeps{Sandbox: ci.Host{}})
	if err != nil {
		t.Fatal(err)
	}
	var emitted []*events.PullRequestOpenedData
	var warnings int
	ctx := context.Background()
	run := &Run{ID: "r1", Iteration: 1, Step: "commit_changes", Ticket: Ticket{ID: "t1", Title: "Greet", RepositoryURL: url, BaseBranch: "main"},
		Log: func(_ context.Context, level, _ string) error {
			if level == "WARNING" {
				warnings++
			}
			return nil
		},
		Emit: func(_ context.Context, p events.Payload) error {
			if pr, ok := p.(*events.PullRequestOpenedData); ok {
				emitted = append(emitted, pr)
			}
			return nil
		}}
	if err := x.PrepareRepository(ctx, run); err != nil {
		t.Fatal(err)
	}
	s, _ := loadState(run)
	hello := "hello"
	s.Pending = &llm.Change{Summary: "greet", Edits: []llm.Edit{{Path: "greeting.txt", Content: &hello}}}
	if err := saveState(run, s); err != nil {
		t.Fatal(err)
	}
	before := run.State // what the engine stored when the step started
	if err := x.CommitChanges(ctx, run); err != nil {
		t.Fatal(err)
	}
	run.State = before // the crash: the step's state was never saved
	if err := x.CommitChanges(ctx, run); err != nil {
		t.Fatal(err)
	}
	if prs := gh.PRs(); len(prs) != 1 || prs[0].Head != forge.Branch("t1") {
		t.Fatalf("PRs = %+v", prs)
	}
	if len(emitted) != 2 || emitted[0].Reused || !emitted[1].Reused || emitted[1].Number != 1 {
		t.Fatalf("PullRequestOpened = %+v", emitted)
	}
	if warnings != 0 {
		t.Fatalf("%d warnings", warnings)
	}
	// The forge failing one call: a warning, and the next call still made.
	gh.FailNext(502)
	if err := x.FinishRun(ctx, run, &events.RunCompletedData{Iteration: 1}); err != nil || warnings != 1 {
		t.Fatalf("FinishRun with the forge failing: %v, %d warnings", err, warnings)
	}
	if prs := gh.PRs(); prs[0].Draft {
		t.Fatal("not ready for review after COMPLETED")
	}
	if sts := gh.Statuses(); len(sts) != 2 { // two pending ticketflow/run ones; the success one failed
		t.Fatalf("statuses %+v", sts)
	}
}
