package ports

import (
	"math"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/httpx"
)

// limitWrites answers 429 rate_limited, with Retry-After in whole seconds, once the
// caller's bucket is empty.
func (h *HTTP) limitWrites(c *fiber.Ctx) error {
	ok, wait := h.limiter.Take(httpx.Claims(c).Subject(), time.Now())
	if ok {
		return c.Next()
	}
	secs := int(math.Ceil(wait.Seconds()))
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(max(secs, 1)))
	return httpx.Errorf(fiber.StatusTooManyRequests, "rate_limited", "too many writes; retry in %d s", max(secs, 1))
}
