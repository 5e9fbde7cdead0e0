package command_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/platform"
	"github.com/ticketflow/ticketflow/services/command/command"
)

// A misconfigured WebSocket ticket TTL, or no JWT secret, stops the process at startup.
func TestBuildRefusesBadConfiguration(t *testing.T) {
	v, _ := auth.NewVerifier("command-test-secret-command-test-secret")
	t.Setenv("TICKETFLOW_WS_TICKET_TTL", "0s")
	if _, err := command.Build(context.Background(), &platform.Base{Verifier: v}); err == nil || !strings.Contains(err.Error(), "TICKETFLOW_WS_TICKET_TTL") {
		t.Fatalf("TTL 0: %v", err)
	}
	t.Setenv("TICKETFLOW_WS_TICKET_TTL", "30s")
	if _, err := command.Build(context.Background(), &platform.Base{}); err == nil || !strings.Contains(err.Error(), "TICKETFLOW_JWT_SECRET") {
		t.Fatalf("no verifier: %v", err)
	}
}
