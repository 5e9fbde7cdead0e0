package app_test

import (
	"context"
	"testing"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/services/command/app"
)

// The use cases are callable without HTTP: `ticketflow dev` creates its demo ticket, with a
// fixed id and Idempotency-Key, through CreateTicket.
func TestCreateTicketWithoutHTTP(t *testing.T) {
	e := newEnv(t)
	in := app.TicketInput{ID: "abc123", Title: "Demo", CICommand: "make test"}
	dev := app.Actor{Subject: "dev"}
	first, err := e.Cmd.App.CreateTicket(context.Background(), dev, in, "demo:abc123")
	if err != nil || first.Status != 201 || first.Location != "/api/tickets/abc123" {
		t.Fatalf("create: %+v %v", first, err)
	}
	again, err := e.Cmd.App.CreateTicket(context.Background(), dev, in, "demo:abc123")
	if err != nil || !again.Replayed || again.Status != 201 {
		t.Fatalf("second create: %+v %v, want the first answer replayed", again, err)
	}
	got, err := e.Cmd.App.Ticket(context.Background(), dev, "abc123")
	if err != nil || got.Owner != "dev" || got.BaseBranch != "main" || got.Status != "IDLE" {
		t.Fatalf("ticket: %+v %v", got, err)
	}
	if _, err := e.Cmd.App.Ticket(context.Background(), app.Actor{Subject: "alice"}, "abc123"); err == nil {
		t.Fatal("another user sees the dev ticket")
	}
	created := 0
	for _, env := range e.LogEnvelopes() {
		if env.Type == events.TicketCreated && env.TicketID == "abc123" {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d TicketCreated for abc123, want 1", created)
	}
}
