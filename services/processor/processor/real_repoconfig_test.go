package processor

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/gittest"
)

// configModel is a Messages API model for the repository configuration tests. Its first
// move is write_file greeting.txt "hello", or README.md when the ticket says OUTSIDE; after a
// refusal ("is not editable") it writes src/ok.txt instead; once a write went through it
// finishes. On a ticket saying LOOP it lists files forever. On one saying SELFCONF it writes
// a .ticketflow.yml whose CI always fails, then greeting.txt, then finishes; after a review
// it writes greeting.txt again and finishes.
func configModel(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	body := string(b)
	reply := func(stop string, content ...map[string]any) {
		_ = json.NewEncoder(w).Encode(map[string]any{"type": "message", "role": "assistant", "model": "claude-test", "stop_reason": stop,
			"content": content, "usage": map[string]any{"input_tokens": 10, "output_tokens": 2}})
	}
	write := func(path, content string) {
		reply("tool_use", map[string]any{"type": "tool_use", "id": "toolu_" + uuid.NewString()[:8], "name": "write_file",
			"input": map[string]any{"path": path, "content": content}})
	}
	switch {
	case strings.Contains(body, "SELFCONF") && strings.Contains(body, "Review comments"):
		if strings.Contains(body, `"tool_result"`) {
			reply("end_turn", map[string]any{"type": "text", "text": "Done again."})
		} else {
			write("greeting.txt", "hello")
		}
	case strings.Contains(body, "SELFCONF") && !strings.Contains(body, "wrote .ticketflow.yml"):
		write(".ticketflow.yml", "version: 1\nci:\n  command: exit 5\n")
	case strings.Contains(body, "SELFCONF") && !strings.Contains(body, "wrote greeting.txt"):
		write("greeting.txt", "hello")
	case strings.Contains(body, "LOOP"):
		reply("tool_use", map[string]any{"type": "tool_use", "id": "toolu_" + uuid.NewString()[:8], "name": "list_files", "input": map[string]any{}})
	case strings.Contains(body, "wrote "):
		reply("end_turn", map[string]any{"type": "text", "text": "Done."})
	case strings.Contains(body, "is not editable"):
		write("src/ok.txt", "ok")
	case strings.Contains(body, "OUTSIDE"):
		write("README.md", "hacked")
	default:
		write("greeting.txt", "hello")
	}
}

// greetingCI passes once greeting.txt says hello.
const greetingCI = "#!/bin/sh\ntest \"$(cat greeting.txt 2>/dev/null)\" = hello || { echo 'greeting.txt must say hello'; exit 7; }\necho repo-ci-ran\n"

// The repository's .ticketflow.yml, read at prepare_repository, decides the run's CI command
// (a ticket's override only where it allows), the paths the agent may change and lower
// limits; an invalid one fails the run naming the field and line. Each case is a ticket of
// its own on one processor, against a real origin repository.
func TestRealRepositoryConfiguration(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(configModel))
	defer srv.Close()
	cfg := realConfig(t)
	cfg.Real.AnthropicKey, cfg.Real.AnthropicBaseURL, cfg.Real.AnthropicModel = "sk-ant-e2e", srv.URL, "claude-test"
	h := newHarness(t, cfg)
	start := func(files map[string]string, ci, description string) (string, string, string) {
		url, bare := gittest.Origin(t, files)
		id, run := uuid.NewString(), uuid.NewString()
		h.append(events.MustNew(id, "", "user:alice", &events.TicketCreatedData{Title: "Greet", Description: description,
			RepositoryURL: url, BaseBranch: "main", CICommand: ci, Owner: "alice"}),
			events.MustNew(id, run, "user:alice", &events.ProcessingRequestedData{RequestedBy: "alice", Reason: "start"}))
		return id, run, bare
	}
	loaded := func(t *testing.T, evs []events.Event) *events.RepositoryConfigLoadedData {
		t.Helper()
		for _, ev := range evs {
			if ev.Type == events.RepositoryConfigLoaded {
				return payload[*events.RepositoryConfigLoadedData](t, ev)
			}
		}
		t.Fatalf("no RepositoryConfigLoaded:\n%s", dump(evs))
		return nil
	}

	t.Run("the CI command comes from the file; a ticket override it does not allow is refused", func(t *testing.T) {
		file := "version: 1\nci:\n  command: sh ci.sh\n  timeout: 30s\nagent:\n  max_steps: 6\n"
		_, run, _ := start(map[string]string{"ci.sh": greetingCI, ".ticketflow.yml": file}, "exit 3", "say hello")
		_, evs := h.waitCompleted(run)
		l := loaded(t, evs)
		c := l.Config
		if l.Source != "file" || l.SizeBytes != len(file) || len(l.SHA256) != 64 || c.CICommand != "sh ci.sh" || c.CICommandFrom != "repository" ||
			c.CICommandOverridable || c.CITimeoutMS != 30000 || c.MaxSteps != 6 || len(c.Notes) != 1 || !strings.Contains(c.Notes[0], `"exit 3" is not used`) {
			t.Errorf("RepositoryConfigLoaded %+v", l)
		}
		log := runLog(t, evs)
		if !strings.Contains(log, "$ sh ci.sh") || !strings.Contains(log, "repo-ci-ran") || strings.Contains(log, "$ exit 3") ||
			!strings.Contains(log, "overrides.ci_command is false") {
			t.Errorf("the run's log:\n%s", log)
		}
	})

	t.Run("a ticket override the file allows is used", func(t *testing.T) {
		file := "version: 1\nci:\n  command: exit 9\noverrides:\n  ci_command: true\n"
		_, run, _ := start(map[string]string{"ci.sh": greetingCI, ".ticketflow.yml": file}, "sh ci.sh", "say hello")
		_, evs := h.waitCompleted(run)
		if c := loaded(t, evs).Config; c.CICommand != "sh ci.sh" || c.CICommandFrom != "ticket" || !c.CICommandOverridable || len(c.Notes) != 0 {
			t.Errorf("config %+v", c)
		}
		if log := runLog(t, evs); !strings.Contains(log, "$ sh ci.sh") || strings.Contains(log, "$ exit 9") {
			t.Errorf("the run's log:\n%s", log)
		}
	})

	t.Run("without a file the ticket's command and the operator's limits apply", func(t *testing.T) {
		_, run, _ := start(map[string]string{"ci.sh": greetingCI}, "sh ci.sh", "say hello")
		_, evs := h.waitCompleted(run)
		if l := loaded(t, evs); l.Source != "default" || l.SHA256 != "" || l.Config.CICommand != "sh ci.sh" || l.Config.CICommandFrom != "ticket" ||
			l.Config.MaxSteps != 40 || l.Config.Editable != nil {
			t.Errorf("RepositoryConfigLoaded %+v", l)
		}
	})

	t.Run("a write outside the editable globs is a tool error the model sees", func(t *testing.T) {
		file := "version: 1\nci:\n  command: test -f src/ok.txt && test \"$(cat README.md)\" = original\nagent:\n  editable: [\"src/**\"]\n"
		ticket, run, bare := start(map[string]string{"README.md": "original", ".ticketflow.yml": file}, "", "OUTSIDE: change the readme")
		_, evs := h.waitCompleted(run)
		if c := loaded(t, evs).Config; len(c.Editable) != 1 || c.Editable[0] != "src/**" {
			t.Errorf("config %+v", c)
		}
		var calls []string
		for _, ev := range evs {
			if ev.Type == events.AgentToolCalled {
				c := payload[*events.AgentToolCalledData](t, ev)
				calls = append(calls, fmt.Sprintf("%s ok=%v %s", c.Tool, c.OK, c.Error))
			}
		}
		if len(calls) != 2 || !strings.HasPrefix(calls[0], "write_file ok=false README.md is not editable: .ticketflow.yml allows the agent to change only src/**") ||
			calls[1] != "write_file ok=true " {
			t.Errorf("tool calls %q", calls)
		}
		branch := fmt.Sprintf("ticketflow/%s/1", ticket)
		if got := gittest.Git(t, bare, "show", branch+":README.md"); got != "original" {
			t.Errorf("README.md on the run branch: %q", got)
		}
		if got := gittest.Git(t, bare, "show", branch+":src/ok.txt"); got != "ok" {
			t.Errorf("src/ok.txt on the run branch: %q", got)
		}
	})

	t.Run("a lower limit of the file bounds the agent, and the failure names it", func(t *testing.T) {
		_, run, _ := start(map[string]string{".ticketflow.yml": "version: 1\nagent:\n  max_steps: 2\n"}, "true", "LOOP")
		f, evs := h.waitFailed(run)
		if f.Step != "call_llm" || !strings.Contains(f.Error, "2 model calls without finishing (.ticketflow.yml agent.max_steps=2)") {
			t.Errorf("failed %+v", f)
		}
		if calls := count(evs, events.LLMCallCompleted); calls != 2 {
			t.Errorf("%d model calls, want 2", calls)
		}
	})

	t.Run("a follow-up run reads the base branch's file, not the one the agent wrote on its branch", func(t *testing.T) {
		ticket, run, bare := start(map[string]string{"ci.sh": greetingCI}, "sh ci.sh", "SELFCONF")
		h.waitCompleted(run)
		if got := gittest.Git(t, bare, "show", fmt.Sprintf("ticketflow/%s/1:.ticketflow.yml", ticket)); !strings.Contains(got, "exit 5") {
			t.Fatalf("the run branch lacks the agent's .ticketflow.yml: %q", got)
		}
		next := uuid.NewString()
		h.append(events.MustNew(ticket, run, "user:bob", &events.ChangesRequestedData{RequestedBy: "bob", Comment: "again", NextRunID: next}),
			events.MustNew(ticket, next, "user:bob", &events.ProcessingRequestedData{RequestedBy: "bob", Reason: "changes_requested"}))
		_, evs := h.waitCompleted(next)
		if l := loaded(t, evs); l.Source != "default" || l.Config.CICommand != "sh ci.sh" {
			t.Errorf("the follow-up run's configuration %+v", l)
		}
		if log := runLog(t, evs); !strings.Contains(log, "Reprise depuis la branche") || strings.Contains(log, "$ exit 5") {
			t.Errorf("the follow-up run's log:\n%s", log)
		}
	})

	t.Run("an invalid file fails the run at prepare_repository naming the field and line", func(t *testing.T) {
		file := "version: 1\nci:\n  comand: make\n"
		_, run, _ := start(map[string]string{"ci.sh": greetingCI, ".ticketflow.yml": file}, "sh ci.sh", "say hello")
		f, evs := h.waitFailed(run)
		if f.Step != "prepare_repository" || !strings.Contains(f.Error, "invalid repository configuration: .ticketflow.yml: line 3: ci.comand: unknown field") {
			t.Errorf("failed %+v", f)
		}
		for _, ev := range evs {
			if ev.Type == events.RepositoryConfigLoaded || ev.Type == events.LLMCallCompleted {
				t.Errorf("%s after an invalid configuration", ev.Type)
			}
		}
		if log := runLog(t, evs); !strings.Contains(log, "Configuration du dépôt invalide") {
			t.Errorf("the run's log:\n%s", log)
		}
	})
}
