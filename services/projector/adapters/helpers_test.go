package adapters

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
)

// testStore is a Store on a database of its own (db reads back what it wrote) and the
// context that bounds the test.
func testStore(t *testing.T) (context.Context, *Store, *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	db := pgtest.NewPool(t)
	return ctx, NewStore(db, "ticket-events"), db
}

// processorEvent is an event of ticket t1 on run ("" for the ticket's own), by the processor.
func processorEvent(run string, p events.Payload) events.Event {
	return events.Event{Envelope: events.MustNew("t1", run, "processor", p)}
}
