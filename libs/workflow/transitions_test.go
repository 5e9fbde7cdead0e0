package workflow

import (
	"testing"

	"github.com/ticketflow/ticketflow/libs/events"
)

func TestStatusUpdateFollowsTheBrief(t *testing.T) {
	var got []Update
	emit := func(p events.Payload) {
		env := events.MustNew("t", "r", "a", p)
		if u, ok := StatusUpdate(env, p); ok {
			got = append(got, u)
		}
	}
	emit(&events.TicketCreatedData{Title: "x"})
	emit(&events.ProcessingRequestedData{})
	emit(&events.RunStartedData{Iteration: 1})
	for _, s := range Steps[:len(Steps)-1] {
		emit(&events.StepStartedData{Step: s.Name, Progress: s.Progress, Attempt: 1})
		emit(&events.LogEmittedData{Level: "INFO", Message: "x"})
		emit(&events.StepCompletedData{Step: s.Name, Outcome: "ok"})
	}
	emit(&events.RunCompletedData{})
	want := []struct {
		status   Status
		step     string
		progress int
	}{
		{Pending, "", 0}, {InProgress, "check_iterations", 5}, {InProgress, "prepare_repository", 20},
		{InProgress, "load_conversation", 30}, {InProgress, "call_llm", 50}, {InProgress, "commit_changes", 70},
		{InProgress, "run_ci", 85}, {InProgress, "handle_ci_result", 95}, {Completed, "await_validation", 100},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d updates, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Status != w.status || got[i].Step != w.step || got[i].Progress != w.progress || got[i].Message == "" {
			t.Errorf("update %d = %+v, want %+v", i, got[i], w)
		}
	}
}

func TestFailureCarriesError(t *testing.T) {
	p := &events.RunFailedData{Step: "handle_ci_result", Message: "CI failed", Error: "exit 1"}
	u, ok := StatusUpdate(events.MustNew("t", "r", "a", p), p)
	if !ok || u.Status != Failed || u.Error != "exit 1" {
		t.Fatalf("update = %+v", u)
	}
	c := &events.RunCancelledData{Reason: "max iterations reached"}
	u, ok = StatusUpdate(events.MustNew("t", "r", "a", c), c)
	if !ok || u.Status != Cancelled || u.Error == "" {
		t.Fatalf("update = %+v", u)
	}
}
