package ports

import (
	"errors"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/forge"
	"github.com/ticketflow/ticketflow/libs/httpx"
)

// forgeWebhook is POST /api/forge/webhooks/{github|gitlab|gitea}: a forge's delivery,
// authenticated by its signature (TICKETFLOW_FORGE_WEBHOOK_SECRET) instead of a bearer
// token — GitHub's X-Hub-Signature-256 and Gitea's X-Gitea-Signature (HMAC-SHA256 of the
// body), GitLab's X-Gitlab-Token (compared in constant time). A review decision goes to the
// application (app.ForgeReview); everything else is answered 200 and ignored.
func (h *HTTP) forgeWebhook(c *fiber.Ctx) error {
	secret := h.cfg.ForgeWebhookSecret
	if secret == "" {
		return httpx.NotFound("forge webhooks are off (TICKETFLOW_FORGE_WEBHOOK_SECRET is not set)")
	}
	body := c.Body()
	var (
		review forge.Review
		err    error
	)
	switch c.Params("forge") {
	case forge.GitHub:
		if err = forge.VerifyGitHub(secret, body, c.Get("X-Hub-Signature-256")); err == nil {
			review, err = forge.ParseGitHub(c.Get("X-GitHub-Event"), body)
		}
	case forge.GitLab:
		if err = forge.VerifyGitLab(secret, c.Get("X-Gitlab-Token")); err == nil {
			review, err = forge.ParseGitLab(c.Get("X-Gitlab-Event"), c.Get("X-Gitlab-Event-UUID"), body)
		}
	case forge.Gitea, "forgejo":
		sig, event, delivery := c.Get("X-Gitea-Signature"), c.Get("X-Gitea-Event"), c.Get("X-Gitea-Delivery")
		if sig == "" {
			sig, event, delivery = c.Get("X-Forgejo-Signature"), c.Get("X-Forgejo-Event"), c.Get("X-Forgejo-Delivery")
		}
		if err = forge.VerifyGitea(secret, body, sig); err == nil {
			review, err = forge.ParseGitea(event, delivery, body)
		}
	default:
		return httpx.NotFound("no such forge %q (github, gitlab, gitea)", c.Params("forge"))
	}
	if errors.Is(err, forge.ErrSignature) {
		return httpx.Errorf(fiber.StatusUnauthorized, "unauthenticated", "the webhook's signature does not verify")
	}
	if err != nil {
		return httpx.BadRequest("%v", err)
	}
	ans, err := h.app.ForgeReview(requestContext(c), review)
	if err != nil {
		return err
	}
	return c.JSON(ans)
}
