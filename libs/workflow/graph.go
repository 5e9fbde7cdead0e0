package workflow

import "fmt"

// Outcome is how a step ended, as far as the run's path through the workflow is concerned.
// A step that fails (an error) ends the run with RunFailed and has no outcome.
type Outcome string

const (
	// Done: the step did its work; the run goes on.
	Done Outcome = "done"
	// IterationsExhausted: check_iterations found no iteration left for the ticket.
	IterationsExhausted Outcome = "iterations_exhausted"
	// CIPassed: handle_ci_result saw the CI pass.
	CIPassed Outcome = "ci_passed"
	// CIFailed: handle_ci_result saw the CI fail with an iteration left: the LLM is asked
	// again, with the CI output.
	CIFailed Outcome = "ci_failed"
	// CIFailedLast: handle_ci_result saw the CI fail on the last iteration allowed.
	CIFailedLast Outcome = "ci_failed_last"
)

// Outcomes lists every outcome.
var Outcomes = []Outcome{Done, IterationsExhausted, CIPassed, CIFailed, CIFailedLast}

// Transition is where an outcome leads: the next step, or the status the run ends in.
type Transition struct {
	// Next is the step to run next; empty when the run ends.
	Next string
	// End is the run's terminal status (Completed, Failed or Cancelled) when Next is empty.
	End Status
	// NewIteration: Next starts a new iteration (a new LLM change, commit and CI execution).
	NewIteration bool
}

// graph is the workflow: for each step, where each of its outcomes leads. await_validation
// is where a completed run waits for a person; no step of a run follows it.
var graph = map[string]map[Outcome]Transition{
	CheckIterations.Name: {
		Done:                {Next: PrepareRepository.Name, NewIteration: true},
		IterationsExhausted: {End: Cancelled},
	},
	PrepareRepository.Name: {Done: {Next: LoadConversation.Name}},
	LoadConversation.Name:  {Done: {Next: CallLLM.Name}},
	CallLLM.Name:           {Done: {Next: CommitChanges.Name}},
	CommitChanges.Name:     {Done: {Next: RunCI.Name}},
	RunCI.Name:             {Done: {Next: HandleCIResult.Name}},
	HandleCIResult.Name: {
		CIPassed:     {End: Completed},
		CIFailed:     {Next: CallLLM.Name, NewIteration: true},
		CIFailedLast: {End: Failed},
	},
}

// Next is where step's outcome leads; an error for an outcome the step cannot have.
func Next(step string, outcome Outcome) (Transition, error) {
	t, ok := graph[step][outcome]
	if !ok {
		return Transition{}, fmt.Errorf("workflow: step %q has no outcome %q", step, outcome)
	}
	return t, nil
}
