package executor

import (
	"context"
	"fmt"
	"strings"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/forge"
	"github.com/ticketflow/ticketflow/libs/workflow"
)

// The run as a pull request on the repository's forge (libs/forge does the talking). The
// ticket's commits are force-pushed to its PR branch (forge.Branch) as well as to the
// iteration's branch, so one PR follows the ticket across iterations and runs:
//
//   - commit_changes: the first push of a run finds the ticket's open PR or opens a draft
//     (PullRequestOpened); later pushes update its title and body; the commit gets a pending
//     "ticketflow/run" status;
//   - run_ci: the commit gets the "ticketflow/ci" status;
//   - the run's end (FinishRun): "ticketflow/run" success and ready for review (COMPLETED),
//     failure (FAILED) or error (CANCELLED).
//
// Every call is safe to repeat: a retried step looks the branch's open PR up before opening
// one, statuses replace themselves by context, marking a ready PR ready does nothing. A forge
// that refuses or does not answer costs the run a WARNING line, not its outcome.

// Commit status contexts.
const (
	statusRun = "ticketflow/run"
	statusCI  = "ticketflow/ci"
)

// prState is the run's pull request (realState.PR).
type prState struct {
	Forge string `json:"forge"`
	forge.PullRequest
}

// Finisher is an Executor that acts when its run ends (the real one: the pull request). The
// engine calls it before appending the terminal event; errors are those of the run's own
// appends.
type Finisher interface {
	FinishRun(ctx context.Context, run *Run, terminal events.Payload) error
}

func (x *Real) forgeTarget(run *Run) (forge.Target, bool) {
	if x.forges == nil {
		return forge.Target{}, false
	}
	t, ok, why := x.forges.Resolve(run.Ticket.RepositoryURL)
	if !ok {
		x.log.Debug("no pull request for this repository", "ticket_id", run.Ticket.ID, "why", why)
	}
	return t, ok
}

func (x *Real) runPage(run *Run) string {
	return strings.TrimRight(x.cfg.Forge.PublicURL, "/") + "/tickets/" + run.Ticket.ID
}

func (x *Real) prBody(run *Run, s realState) string {
	var b strings.Builder
	if d := strings.TrimSpace(run.Ticket.Description); d != "" {
		b.WriteString(d)
		b.WriteString("\n\n")
	}
	b.WriteString("---\n")
	fmt.Fprintf(&b, "Opened by [ticketflow](%s) for ticket `%s`: follow the run live on its page, %s\n\n", x.runPage(run), run.Ticket.ID, x.runPage(run))
	fmt.Fprintf(&b, "Iteration %d, run `%s`.", run.Iteration, run.ID)
	for _, t := range s.Turns {
		if t.Iteration == run.Iteration && t.Summary != "" {
			fmt.Fprintf(&b, " Last change: %s", t.Summary)
		}
	}
	b.WriteString("\n\nApprove this pull request to validate the ticket; request changes (with comments) to start another run.\n")
	return x.red.String(b.String())
}

func (x *Real) forgeWarn(ctx context.Context, run *Run, kind, what string, err error) error {
	x.log.Warn("forge call failed", "forge", kind, "what", what, "ticket_id", run.Ticket.ID, "run_id", run.ID, "err", x.red.Error(err))
	return x.logf(ctx, run, "WARNING", workflow.LogForgeFailed, kind, what, x.red.Error(err))
}

// pullRequest runs after commit_changes pushed commit: the PR branch, the PR, the pending status.
func (x *Real) pullRequest(ctx context.Context, run *Run, s *realState, commit string) error {
	tg, ok := x.forgeTarget(run)
	if !ok {
		return nil
	}
	kind := tg.Forge.Kind()
	head := forge.Branch(run.Ticket.ID)
	if err := workflow.ValidateBranch(head); err != nil {
		return x.forgeWarn(ctx, run, kind, "the pull request branch "+head, err)
	}
	if err := x.git.Push(ctx, x.workDir(run.Ticket.ID), head); err != nil {
		return x.forgeWarn(ctx, run, kind, "git push "+head, err)
	}
	title, body := "ticketflow: "+run.Ticket.Title, x.prBody(run, *s)
	if s.PR == nil {
		found, err := tg.Forge.FindOpen(ctx, tg.Repo, head)
		if err != nil {
			return x.forgeWarn(ctx, run, kind, "looking up the open pull request", err)
		}
		reused := found != nil
		var pr forge.PullRequest
		if reused {
			pr = *found
			if err := tg.Forge.Update(ctx, tg.Repo, pr, title, body); err != nil {
				return x.forgeWarn(ctx, run, kind, "updating the pull request", err)
			}
		} else if pr, err = tg.Forge.Open(ctx, tg.Repo, forge.NewPullRequest{Title: title, Body: body, Head: head, Base: baseBranch(run.Ticket)}); err != nil {
			return x.forgeWarn(ctx, run, kind, "opening the pull request", err)
		}
		s.PR = &prState{Forge: kind, PullRequest: pr}
		if err := saveState(run, *s); err != nil {
			return err
		}
		if err := run.Emit(ctx, &events.PullRequestOpenedData{URL: pr.URL, Number: pr.Number, Forge: kind, Branch: head, Reused: reused}); err != nil {
			return err
		}
		msg := workflow.LogPROpened
		if reused {
			msg = workflow.LogPRReused
		}
		if err := x.logf(ctx, run, "INFO", msg, kind, pr.Number, pr.URL); err != nil {
			return err
		}
	} else {
		if err := tg.Forge.Update(ctx, tg.Repo, s.PR.PullRequest, title, body); err != nil {
			return x.forgeWarn(ctx, run, kind, "updating the pull request", err)
		}
		if err := x.logf(ctx, run, "INFO", workflow.LogPRUpdated, s.PR.Number, run.Iteration); err != nil {
			return err
		}
	}
	// GitLab and Gitea mark a draft in its title: ready-for-review sets the title without it.
	s.PR.Title = title
	if err := saveState(run, *s); err != nil {
		return err
	}
	return x.commitStatus(ctx, run, tg, commit, forge.Status{State: forge.Pending, Context: statusRun,
		Description: fmt.Sprintf("iteration %d: CI running", run.Iteration)})
}

func (x *Real) commitStatus(ctx context.Context, run *Run, tg forge.Target, sha string, st forge.Status) error {
	if sha == "" {
		return nil
	}
	st.TargetURL = x.runPage(run)
	if err := tg.Forge.SetStatus(ctx, tg.Repo, sha, st); err != nil {
		return x.forgeWarn(ctx, run, tg.Forge.Kind(), "commit status "+st.Context, err)
	}
	return nil
}

// ciStatus reports one CI execution as the commit's ticketflow/ci status.
func (x *Real) ciStatus(ctx context.Context, run *Run, s realState, out CIOutcome) error {
	if s.PR == nil {
		return nil
	}
	tg, ok := x.forgeTarget(run)
	if !ok {
		return nil
	}
	st := forge.Status{State: forge.Success, Context: statusCI, Description: fmt.Sprintf("CI passed in %.1fs (iteration %d)", float64(out.DurationMS)/1000, run.Iteration)}
	if !out.Passed {
		st.State, st.Description = forge.Failure, fmt.Sprintf("CI failed, exit code %d (iteration %d)", out.ExitCode, run.Iteration)
	}
	return x.commitStatus(ctx, run, tg, run.State.Commit, st)
}

// FinishRun reports the run's end on its pull request: ready for review when it COMPLETED.
func (x *Real) FinishRun(ctx context.Context, run *Run, terminal events.Payload) error {
	s, err := loadState(run)
	if err != nil || s.PR == nil {
		return nil
	}
	tg, ok := x.forgeTarget(run)
	if !ok {
		return nil
	}
	st := forge.Status{Context: statusRun}
	switch t := terminal.(type) {
	case *events.RunCompletedData:
		st.State, st.Description = forge.Success, "completed: awaiting review"
	case *events.RunFailedData:
		st.State, st.Description = forge.Failure, "failed: "+x.red.String(t.Error)
	case *events.RunCancelledData:
		st.State, st.Description = forge.Error, "cancelled: "+t.Reason
	default:
		return nil
	}
	if err := x.commitStatus(ctx, run, tg, run.State.Commit, st); err != nil {
		return err
	}
	if st.State != forge.Success {
		return nil
	}
	if err := tg.Forge.MarkReady(ctx, tg.Repo, s.PR.PullRequest); err != nil {
		return x.forgeWarn(ctx, run, tg.Forge.Kind(), "marking the pull request ready for review", err)
	}
	s.PR.Draft, s.PR.Title = false, strings.TrimSpace(s.PR.Title)
	if err := saveState(run, s); err != nil {
		return err
	}
	return x.logf(ctx, run, "INFO", workflow.LogPRReady, s.PR.Number)
}
