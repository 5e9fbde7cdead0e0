package wmkafka

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
)

// Retry policy of NewRouter: 4 attempts in all, 100 ms, 200 ms, 400 ms apart (capped at 2 s).
const (
	RouterMaxRetries      = 3
	RouterRetryInitial    = 100 * time.Millisecond
	RouterRetryMaxBackoff = 2 * time.Second
)

// NewRouter returns a Watermill router with the middleware every ticketflow consumer wants,
// outermost first:
//
//   - PoisonQueue: a message whose handler still fails after the retries is published to
//     poisonTopic (with the reason in "reason_poisoned" metadata) and acked, so one bad
//     message cannot stall its partition forever. The cost: it is skipped, not processed;
//     someone has to look at poisonTopic. If publishing to poisonTopic fails, the message
//     is nacked and comes again.
//   - Retry: up to RouterMaxRetries more attempts with exponential backoff. Retries happen
//     inside the handler call, so the partition waits and order is kept.
//   - Recoverer: a panic becomes an error (and so is retried, then poisoned).
//
// Handlers are added by the caller; log becomes the router's logger.
func NewRouter(log *slog.Logger, poisonPublisher message.Publisher, poisonTopic string) (*message.Router, error) {
	logger := watermill.NewSlogLogger(log)
	router, err := message.NewRouter(message.RouterConfig{}, logger)
	if err != nil {
		return nil, err
	}
	poison, err := middleware.PoisonQueue(poisonPublisher, poisonTopic)
	if err != nil {
		return nil, fmt.Errorf("wmkafka: poison queue: %w", err)
	}
	router.AddMiddleware(
		poison,
		middleware.Retry{
			MaxRetries:      RouterMaxRetries,
			InitialInterval: RouterRetryInitial,
			MaxInterval:     RouterRetryMaxBackoff,
			Multiplier:      2,
			Logger:          logger,
		}.Middleware,
		middleware.Recoverer,
	)
	return router, nil
}
