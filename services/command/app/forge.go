package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/ticketflow/ticketflow/libs/forge"
	"github.com/ticketflow/ticketflow/libs/httpx"
)

// ForgeAnswer is what a forge's webhook delivery is answered: Accepted when the review
// decided the ticket (Replayed when the decision was taken before: a redelivery appends
// nothing), else Ignored says why. Forges retry non-2xx deliveries, so everything that
// is no failure of ticketflow's own is a 200.
type ForgeAnswer struct {
	Accepted bool   `json:"accepted"`
	Replayed bool   `json:"replayed,omitempty"`
	Ignored  string `json:"ignored,omitempty"`
	TicketID string `json:"ticket_id,omitempty"`
	Decision string `json:"decision,omitempty"`
}

// ForgeReview applies a review from a forge's webhook (whose signature the port verified)
// as the human validation of the ticket's completed run: ValidateRun, by the reviewer
// ("github:<login>"), keyed by the review's id so that a replayed or redelivered webhook
// decides once. Only trusted reviewers on the ticket's own pull request count.
func (a *Application) ForgeReview(ctx context.Context, r forge.Review) (ForgeAnswer, error) {
	ignore := func(format string, args ...any) (ForgeAnswer, error) {
		a.logger.Info("forge webhook ignored", "forge", r.Forge, "reason", fmt.Sprintf(format, args...))
		return ForgeAnswer{Ignored: fmt.Sprintf(format, args...)}, nil
	}
	if r.Decision == "" {
		return ignore("%s", r.Ignored)
	}
	if !r.Trusted {
		return ignore("reviewer %s is not an owner, member or collaborator of the repository", r.Reviewer)
	}
	ticketID, ok := forge.TicketOfBranch(r.HeadRef)
	if !ok {
		return ignore("branch %q is no ticketflow pull request branch", r.HeadRef)
	}
	t, err := a.store.Ticket(ctx, ticketID)
	if errors.Is(err, ErrNotFound) {
		return ignore("no ticket %q", ticketID)
	}
	if err != nil {
		return ForgeAnswer{}, dbError(err)
	}
	if t.PullRequestURL == "" || t.PullRequestURL != r.PullRequestURL {
		return ignore("%s is not the pull request of ticket %s", r.PullRequestURL, ticketID)
	}
	v := Validation{Decision: r.Decision, Comment: r.Comment}
	if v.Decision == forge.RequestChanges && v.Comment == "" {
		v.Comment = fmt.Sprintf("Changes requested by %s on %s (see the review's comments there).", r.Reviewer, r.PullRequestURL)
	}
	actor := Actor{Subject: r.Forge + ":" + r.Reviewer, Admin: true}
	res, err := a.ValidateRun(ctx, actor, ticketID, v, r.ID)
	var he *httpx.Error
	if errors.As(err, &he) && (he.Status == http.StatusConflict || he.Status == http.StatusUnprocessableEntity) {
		return ignore("%s", he.Message) // not awaiting validation (any more), or the key's other request
	}
	if err != nil {
		return ForgeAnswer{}, err
	}
	if res.Status >= 400 { // the key's stored refusal, replayed (a review while the run was not awaiting validation)
		var refused struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(res.Body, &refused)
		return ignore("%s (this review was refused before)", refused.Error.Message)
	}
	return ForgeAnswer{Accepted: true, Replayed: res.Replayed, TicketID: ticketID, Decision: r.Decision}, nil
}
