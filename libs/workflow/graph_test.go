package workflow

import "testing"

// Every step against every outcome: the transitions of the brief's workflow, and an error
// for everything else.
func TestNextCoversEveryStepAndOutcome(t *testing.T) {
	type key struct {
		step    string
		outcome Outcome
	}
	want := map[key]Transition{
		{"check_iterations", Done}:                {Next: "prepare_repository", NewIteration: true},
		{"check_iterations", IterationsExhausted}: {End: Cancelled},
		{"prepare_repository", Done}:              {Next: "load_conversation"},
		{"load_conversation", Done}:               {Next: "call_llm"},
		{"call_llm", Done}:                        {Next: "commit_changes"},
		{"commit_changes", Done}:                  {Next: "run_ci"},
		{"run_ci", Done}:                          {Next: "handle_ci_result"},
		{"handle_ci_result", CIPassed}:            {End: Completed},
		{"handle_ci_result", CIFailed}:            {Next: "call_llm", NewIteration: true},
		{"handle_ci_result", CIFailedLast}:        {End: Failed},
	}
	seen := 0
	for _, s := range append(Steps, Step{Name: "no_such_step"}) {
		for _, o := range append(Outcomes, "no_such_outcome") {
			got, err := Next(s.Name, o)
			w, ok := want[key{s.Name, o}]
			switch {
			case ok && err != nil:
				t.Errorf("Next(%s, %s): %v, want %+v", s.Name, o, err, w)
			case ok && got != w:
				t.Errorf("Next(%s, %s) = %+v, want %+v", s.Name, o, got, w)
			case !ok && err == nil:
				t.Errorf("Next(%s, %s) = %+v, want an error", s.Name, o, got)
			}
			if ok {
				seen++
			}
		}
	}
	if seen != len(want) {
		t.Errorf("%d of the %d expected transitions were checked", seen, len(want))
	}
}

// Every step but the last is reachable from check_iterations, and every run ends: the
// graph has no dead end and every transition names a step of the workflow.
func TestGraphIsWellFormed(t *testing.T) {
	reached := map[string]bool{CheckIterations.Name: true}
	queue := []string{CheckIterations.Name}
	for len(queue) > 0 {
		step := queue[0]
		queue = queue[1:]
		outs := graph[step]
		if len(outs) == 0 {
			t.Errorf("step %s has no outcome", step)
		}
		for o, tr := range outs {
			switch {
			case tr.Next == "" && !(tr.End == Completed || tr.End == Failed || tr.End == Cancelled):
				t.Errorf("%s/%s ends the run in %q, not a terminal status", step, o, tr.End)
			case tr.Next != "" && tr.End != "":
				t.Errorf("%s/%s both continues and ends", step, o)
			case tr.Next != "":
				if _, ok := StepByName(tr.Next); !ok {
					t.Errorf("%s/%s leads to unknown step %q", step, o, tr.Next)
				}
				if !reached[tr.Next] {
					reached[tr.Next] = true
					queue = append(queue, tr.Next)
				}
			}
		}
	}
	for _, s := range Steps[:len(Steps)-1] {
		if !reached[s.Name] {
			t.Errorf("step %s is not reachable", s.Name)
		}
	}
}
