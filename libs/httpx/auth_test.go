package httpx

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/auth"
)

func TestRequireAuthTakesTheHeaderOnly(t *testing.T) {
	v, err := auth.NewVerifier("httpx-test-secret-0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	app := NewApp(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	app.Get("/api/me", RequireAuth(v), func(c *fiber.Ctx) error { return c.SendString(Claims(c).Subject()) })
	bearer, _ := v.Issue("alice", auth.RoleUser, time.Hour)
	claims, _ := v.Verify(bearer)
	ticket, _, err := v.IssueWSTicket(claims, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		query  string
		header string
		want   int
	}{
		{"bearer in the header", "", "Bearer " + bearer, 200},
		{"bearer in ?access_token=", "?access_token=" + bearer, "", 401},
		{"WebSocket ticket in the header", "", "Bearer " + ticket, 401},
		{"WebSocket ticket in ?ticket=", "?ticket=" + ticket, "", 401},
		{"nothing", "", "", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/api/me"+tc.query, nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := app.Test(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}
