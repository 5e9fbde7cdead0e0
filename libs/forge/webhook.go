package forge

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrSignature: a webhook whose signature (or GitLab token) does not verify.
var ErrSignature = errors.New("webhook signature does not verify")

// Sign is the hex HMAC-SHA256 of body under secret (GitHub sends it as "sha256=<hex>" in
// X-Hub-Signature-256, Gitea and Forgejo bare in X-Gitea-Signature / X-Forgejo-Signature).
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyGitHub checks X-Hub-Signature-256.
func VerifyGitHub(secret string, body []byte, header string) error {
	sig, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok {
		return ErrSignature
	}
	return verifyHex(secret, body, sig)
}

// VerifyGitea checks X-Gitea-Signature (or X-Forgejo-Signature).
func VerifyGitea(secret string, body []byte, header string) error {
	return verifyHex(secret, body, strings.TrimSpace(header))
}

func verifyHex(secret string, body []byte, sig string) error {
	if secret == "" {
		return ErrSignature
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return ErrSignature
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return ErrSignature
	}
	return nil
}

// VerifyGitLab compares X-Gitlab-Token with the secret in constant time (GitLab signs nothing:
// it sends the configured secret token as is).
func VerifyGitLab(secret, header string) error {
	if secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(header)) != 1 {
		return ErrSignature
	}
	return nil
}

// Decisions a review can carry.
const (
	Approve        = "approve"
	RequestChanges = "request_changes"
)

// Review is what a webhook says about a pull request review, whatever the forge.
type Review struct {
	Forge string
	// ID identifies the review (or approval, or note) across redeliveries: the key that makes
	// it count once.
	ID string
	// Decision is Approve, RequestChanges, or "" when the delivery is no review decision
	// (then Ignored says why).
	Decision string
	Ignored  string
	Reviewer string
	// Trusted: the reviewer may decide (GitHub: author_association OWNER, MEMBER or
	// COLLABORATOR; GitLab: an approval, which only eligible approvers can give, or a note;
	// Gitea: an official review).
	Trusted bool
	Comment string
	// PullRequestURL is the PR's web page; HeadRef its source branch.
	PullRequestURL string
	HeadRef        string
}

func ignored(forge, why string) Review { return Review{Forge: forge, Ignored: why} }

// trustedAssociations are GitHub's author_association values of people who may decide.
var trustedAssociations = map[string]bool{"OWNER": true, "MEMBER": true, "COLLABORATOR": true}

// hookPullRequest is the pull request of a GitHub or Gitea review delivery.
type hookPullRequest struct {
	HTMLURL string `json:"html_url"`
	Head    struct {
		Ref string `json:"ref"`
	} `json:"head"`
}

// ParseGitHub reads a GitHub delivery (event = X-GitHub-Event). pull_request_review
// "submitted" with state approved or changes_requested is a decision.
func ParseGitHub(event string, body []byte) (Review, error) {
	if event != "pull_request_review" {
		return ignored(GitHub, "event "+event+" is not a review"), nil
	}
	var p struct {
		Action string `json:"action"`
		Review struct {
			ID                int64  `json:"id"`
			State             string `json:"state"`
			Body              string `json:"body"`
			AuthorAssociation string `json:"author_association"`
			User              struct {
				Login string `json:"login"`
			} `json:"user"`
		} `json:"review"`
		PullRequest hookPullRequest `json:"pull_request"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return Review{}, fmt.Errorf("github webhook: %w", err)
	}
	r := Review{Forge: GitHub, ID: fmt.Sprintf("github-review-%d", p.Review.ID), Reviewer: p.Review.User.Login,
		Trusted: trustedAssociations[strings.ToUpper(p.Review.AuthorAssociation)], Comment: strings.TrimSpace(p.Review.Body),
		PullRequestURL: p.PullRequest.HTMLURL, HeadRef: p.PullRequest.Head.Ref}
	switch {
	case p.Action != "submitted":
		r.Ignored = "review " + p.Action
	case strings.EqualFold(p.Review.State, "approved"):
		r.Decision = Approve
	case strings.EqualFold(p.Review.State, "changes_requested"):
		r.Decision = RequestChanges
	default:
		r.Ignored = "review state " + p.Review.State
	}
	return r, nil
}

// RequestChangesCommand starts a GitLab note that asks for changes (GitLab has no
// "request changes" review in every edition).
const RequestChangesCommand = "/request-changes"

// ParseGitLab reads a GitLab delivery (event = X-Gitlab-Event, uuid = X-Gitlab-Event-UUID):
// a "Merge Request Hook" with action approved approves; a "Note Hook" on a merge request
// starting with /request-changes asks for changes with the rest of the note.
func ParseGitLab(event, uuid string, body []byte) (Review, error) {
	var p struct {
		User struct {
			Username string `json:"username"`
		} `json:"user"`
		ObjectAttributes struct {
			ID           int64  `json:"id"`
			IID          int    `json:"iid"`
			Action       string `json:"action"`
			Note         string `json:"note"`
			NoteableType string `json:"noteable_type"`
			URL          string `json:"url"`
			SourceBranch string `json:"source_branch"`
		} `json:"object_attributes"`
		MergeRequest struct {
			URL          string `json:"url"`
			SourceBranch string `json:"source_branch"`
		} `json:"merge_request"`
	}
	switch event {
	case "Merge Request Hook", "Note Hook":
	default:
		return ignored(GitLab, "event "+event+" is not a review"), nil
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return Review{}, fmt.Errorf("gitlab webhook: %w", err)
	}
	oa := p.ObjectAttributes
	r := Review{Forge: GitLab, Reviewer: p.User.Username, Trusted: true}
	if event == "Merge Request Hook" {
		r.PullRequestURL, r.HeadRef = oa.URL, oa.SourceBranch
		if oa.Action != "approved" {
			r.Ignored = "merge request " + oa.Action
			return r, nil
		}
		// An approval has no id of its own: the delivery's uuid identifies it.
		if uuid == "" {
			return Review{}, errors.New("gitlab webhook: no X-Gitlab-Event-UUID")
		}
		r.ID, r.Decision = "gitlab-approval-"+uuid, Approve
		return r, nil
	}
	r.PullRequestURL, r.HeadRef = p.MergeRequest.URL, p.MergeRequest.SourceBranch
	note := strings.TrimSpace(oa.Note)
	rest, ok := strings.CutPrefix(note, RequestChangesCommand)
	if oa.NoteableType != "MergeRequest" || !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\n') {
		r.Ignored = "note is no " + RequestChangesCommand
		return r, nil
	}
	r.ID, r.Decision, r.Comment = fmt.Sprintf("gitlab-note-%d", oa.ID), RequestChanges, strings.TrimSpace(rest)
	return r, nil
}

// ParseGitea reads a Gitea/Forgejo delivery (event = X-Gitea-Event / X-Forgejo-Event, delivery
// = X-Gitea-Delivery): pull_request_review_approved and pull_request_review_rejected.
func ParseGitea(event, delivery string, body []byte) (Review, error) {
	var decision string
	switch event {
	case "pull_request_review_approved":
		decision = Approve
	case "pull_request_review_rejected":
		decision = RequestChanges
	default:
		return ignored(Gitea, "event "+event+" is not a review decision"), nil
	}
	var p struct {
		PullRequest hookPullRequest `json:"pull_request"`
		Sender      struct {
			Login string `json:"login"`
		} `json:"sender"`
		Review struct {
			Type    string `json:"type"`
			Content string `json:"content"`
		} `json:"review"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return Review{}, fmt.Errorf("gitea webhook: %w", err)
	}
	if delivery == "" {
		return Review{}, errors.New("gitea webhook: no X-Gitea-Delivery")
	}
	return Review{Forge: Gitea, ID: "gitea-delivery-" + delivery, Decision: decision, Reviewer: p.Sender.Login,
		// Gitea's payload carries no reviewer role: whoever can review the repository decides
		// (restrict reviews with the repository's permissions or branch protection).
		Trusted: true, Comment: strings.TrimSpace(p.Review.Content),
		PullRequestURL: p.PullRequest.HTMLURL, HeadRef: p.PullRequest.Head.Ref}, nil
}
