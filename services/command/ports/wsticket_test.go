package ports_test

import (
	"testing"

	"github.com/ticketflow/ticketflow/libs/auth"
)

func TestWSTicketIssued(t *testing.T) {
	e := newEnv(t)
	r := e.Call(e.Alice, "POST", "/api/ws-tickets", "")
	if r.Status != 200 {
		t.Fatalf("POST /api/ws-tickets: %d %v", r.Status, r.Body)
	}
	ticket, _ := r.Body["ticket"].(string)
	if ttl, _ := r.Body["expires_in"].(float64); ttl != 30 {
		t.Fatalf("expires_in = %v, want 30", r.Body["expires_in"])
	}
	tk, err := e.V.VerifyWSTicket(ticket)
	if err != nil {
		t.Fatalf("the issued ticket does not verify: %v", err)
	}
	if tk.Claims.Subject() != "alice" || tk.Claims.Role != auth.RoleUser {
		t.Fatalf("ticket claims = %+v", tk.Claims)
	}
	// A ticket is not a bearer token, not even for asking another ticket.
	if r := e.Call(ticket, "POST", "/api/ws-tickets", ""); r.Status != 401 {
		t.Fatalf("ticket used as bearer: %d", r.Status)
	}
	if r := e.Call("", "POST", "/api/ws-tickets?access_token="+e.Alice, ""); r.Status != 401 {
		t.Fatalf("bearer in the query: %d", r.Status)
	}
}
