package app

import (
	"context"
	"errors"
	"regexp"

	"github.com/ticketflow/ticketflow/libs/httpx"
)

// Run artifacts (table run_artifacts, written by the processor): today the full output of
// each CI execution, ci-<iteration>.log, whose lines past the output cap are not events. Only
// the ticket's owner and admins see them; anyone else gets 404, as for a run that does not
// exist, so artifact names do not reveal other tenants' runs.

var (
	artifactRunID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,100}$`)
	artifactName  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)
)

// Artifacts lists the artifacts of a run the actor may see.
func (a *Application) Artifacts(ctx context.Context, actor Actor, runID string) ([]Artifact, error) {
	if err := a.visibleRun(ctx, actor, runID); err != nil {
		return nil, err
	}
	list, err := a.store.Artifacts(ctx, runID)
	if err != nil {
		return nil, dbError(err)
	}
	if list == nil {
		list = []Artifact{}
	}
	return list, nil
}

// ArtifactContent is the content of one artifact of a run the actor may see.
func (a *Application) ArtifactContent(ctx context.Context, actor Actor, runID, name string) ([]byte, error) {
	if err := a.visibleRun(ctx, actor, runID); err != nil {
		return nil, err
	}
	if !artifactName.MatchString(name) {
		return nil, httpx.NotFound("artifact %q not found", name)
	}
	content, err := a.store.ArtifactContent(ctx, runID, name)
	if errors.Is(err, ErrNotFound) {
		return nil, httpx.NotFound("artifact %q not found", name)
	}
	if err != nil {
		return nil, dbError(err)
	}
	return content, nil
}

// visibleRun succeeds when the actor may see the run: its ticket is theirs, or they are an
// admin. A run the projector has not recorded yet is found through its artifacts' ticket.
func (a *Application) visibleRun(ctx context.Context, actor Actor, runID string) error {
	if !artifactRunID.MatchString(runID) {
		return httpx.NotFound("run %q not found", runID)
	}
	ticketID, err := a.store.RunTicket(ctx, runID)
	if errors.Is(err, ErrNotFound) {
		ticketID, err = a.store.ArtifactTicket(ctx, runID)
	}
	if errors.Is(err, ErrNotFound) {
		return httpx.NotFound("run %q not found", runID)
	}
	if err != nil {
		return dbError(err)
	}
	t, err := a.store.Ticket(ctx, ticketID)
	if errors.Is(err, ErrNotFound) || (err == nil && !actor.canAccess(t.Owner)) {
		return httpx.NotFound("run %q not found", runID)
	}
	if err != nil {
		return dbError(err)
	}
	return nil
}
