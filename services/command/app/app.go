// Package app holds the command service's use cases: an Application whose methods take a
// context and plain arguments (StartProcessing(ctx, actor, ticketID, key) and the others),
// callable from the HTTP routes (package ports), tests, `ticketflow dev` and a CLI alike.
//
// Writes decide, from the ticket as the projection shows it under the ticket's lock, which
// events to append and what to answer (commands.go); execute (execute.go) holds the locks,
// the Idempotency-Key and the append, then waits for the projection. Reads are queries.go
// and artifacts.go. The database and the event log are the Store and EventLog interfaces
// (ports.go), implemented by package adapters.
package app

import (
	"log/slog"
	"time"

	"github.com/ticketflow/ticketflow/libs/repourl"
)

// Config is what the use cases need to know (package command reads it from the environment).
type Config struct {
	// Repos is the repository policy tickets are created under.
	Repos repourl.Config
	// ProjectionWait bounds how long a write waits for the projector to show it.
	ProjectionWait time.Duration
	// AppendTimeout bounds a Kafka append before the write fails with 503.
	AppendTimeout time.Duration
}

// Application is the command service's use cases.
type Application struct {
	cfg    Config
	logger *slog.Logger
	store  Store
	log    EventLog
	repos  *repourl.Policy
	faults faultHook
}

// storeTimeout bounds storing an answer after the append; it runs even when the request's
// own context has ended, since the event is durable by then.
const storeTimeout = 5 * time.Second

// New builds the application; it fails on an invalid repository policy. resolver looks
// repository hosts up (nil: the system resolver).
func New(cfg Config, logger *slog.Logger, store Store, log EventLog, resolver repourl.Resolver) (*Application, error) {
	repos, err := repourl.New(cfg.Repos, resolver)
	if err != nil {
		return nil, err
	}
	return &Application{cfg: cfg, logger: logger, store: store, log: log, repos: repos}, nil
}

// Actor is who asks.
type Actor struct {
	Subject string
	Admin   bool
}

func (a Actor) canAccess(owner string) bool { return a.Admin || a.Subject == owner }

// Result is a write's answer: an HTTP status and JSON body (the API's contract), and
// whether it is the stored answer of an earlier attempt with the same Idempotency-Key.
type Result struct {
	Status   int
	Body     []byte
	Replayed bool
	Location string
}
