// Package workflow holds the ticket workflow shared by every service: the eight steps with
// the brief's progress values (workflow.go), the graph a run follows through them (graph.go:
// Next), the ticket status each event announces (transitions.go: StatusUpdate) and every
// message shown to people (messages.go).
package workflow

// Step is one workflow node.
type Step struct {
	Name     string
	Progress int
	Message  string
}

// The steps in order, exactly as the brief numbers them.
var (
	CheckIterations   = Step{"check_iterations", 5, MessageCheckIterations}
	PrepareRepository = Step{"prepare_repository", 20, MessagePrepareRepository}
	LoadConversation  = Step{"load_conversation", 30, MessageLoadConversation}
	CallLLM           = Step{"call_llm", 50, MessageCallLLM}
	CommitChanges     = Step{"commit_changes", 70, MessageCommitChanges}
	RunCI             = Step{"run_ci", 85, MessageRunCI}
	HandleCIResult    = Step{"handle_ci_result", 95, MessageHandleCIResult}
	AwaitValidation   = Step{"await_validation", 100, MessageAwaitValidation}
)

// Steps lists every step in workflow order.
var Steps = []Step{CheckIterations, PrepareRepository, LoadConversation, CallLLM, CommitChanges, RunCI, HandleCIResult, AwaitValidation}

// StepByName finds a step; ok is false for names outside the workflow.
func StepByName(name string) (Step, bool) {
	for _, s := range Steps {
		if s.Name == name {
			return s, true
		}
	}
	return Step{}, false
}

// Status of a ticket (and of its latest run).
type Status string

const (
	Idle       Status = "IDLE"
	Pending    Status = "PENDING"
	InProgress Status = "IN_PROGRESS"
	Completed  Status = "COMPLETED"
	Failed     Status = "FAILED"
	Cancelled  Status = "CANCELLED"
	Validated  Status = "VALIDATED"
)

// Active reports whether a run in this status still holds the ticket.
func (s Status) Active() bool { return s == Pending || s == InProgress }
