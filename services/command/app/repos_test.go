package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/repourl"
	"github.com/ticketflow/ticketflow/services/command/command"
	"github.com/ticketflow/ticketflow/services/command/internal/commandtest"
)

// Ticket creation refuses repositories on internal addresses (422, no address in the message)
// and, when an allow-list is set, repositories outside it.
func TestCreateTicketRepositoryPolicy(t *testing.T) {
	e := commandtest.New(t, command.Config{ProjectionWait: 10 * time.Second, AppendTimeout: 10 * time.Second,
		Repos: repourl.Config{Allowlist: []string{"github.com/acme/*"}}}, 0)
	create := func(url string) commandtest.Reply {
		return e.Call(e.Alice, "POST", "/api/tickets", `{"title":"x","repository_url":"`+url+`"}`)
	}
	for _, url := range []string{
		"https://127.0.0.1/acme/r", "https://127.0.0.1:5432/acme/r", "https://localhost/acme/r", "https://[::1]/acme/r",
		"https://[::ffff:127.0.0.1]/acme/r", "https://2130706433/acme/r", "https://0x7f000001/acme/r", "https://10.1.2.3/acme/r",
		"https://git.internal/acme/r", "https://metadata.internal/acme/r", "git@169.254.169.254:acme/r", "ssh://git@192.168.1.1/acme/r",
		"https://100.64.0.1/acme/r", "git@github.com:-oProxyCommand=x", "-oProxyCommand=x@github.com:acme/r", "file:///etc/acme",
		"https://github.com/victim/secret", "git@github.com:victim/secret.git", "https://github.com/acmecorp/r",
	} {
		r := create(url)
		if r.Status != 422 || r.Code() != "invalid_field" || !strings.Contains(r.Message(), "repository_url") {
			t.Errorf("%s → %d %v, want 422", url, r.Status, r.Body)
		}
		if strings.Contains(r.Message(), "10.0.0.7") || strings.Contains(r.Message(), "169.254.169.254") && !strings.Contains(url, "169.254") {
			t.Errorf("%s: the message names a resolved address: %s", url, r.Message())
		}
	}
	if r := create("https://github.com/victim/secret"); !strings.Contains(r.Message(), "allow-list") {
		t.Errorf("outside the allow-list: %v", r.Body)
	}
	for _, url := range []string{"https://github.com/acme/widgets.git", "git@github.com:acme/widgets.git", "https://github.com/Acme/tools"} {
		if r := create(url); r.Status != 201 {
			t.Errorf("%s → %d %v, want 201", url, r.Status, r.Body)
		}
	}
}

func TestCreateTicketWithoutAllowlistAcceptsPublicRepositories(t *testing.T) {
	e := commandtest.New(t, commandtest.DefaultConfig, 0)
	for url, status := range map[string]int{"https://github.com/anyone/repo.git": 201, "https://not-resolving-yet.example/o/r": 201,
		"https://localhost/o/r": 422, "https://github.com/o/r?x": 422} {
		if r := e.Call(e.Alice, "POST", "/api/tickets", `{"title":"x","repository_url":"`+url+`"}`); r.Status != status {
			t.Errorf("%s → %d %v, want %d", url, r.Status, r.Body, status)
		}
	}
}
