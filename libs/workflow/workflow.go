// Package workflow holds the ticket workflow's vocabulary shared by every service: the eight
// steps with the brief's progress values and messages, and the ticket statuses.
package workflow

// Step is one workflow node.
type Step struct {
	Name     string
	Progress int
	Message  string
}

// The steps in order, exactly as the brief numbers them.
var (
	CheckIterations   = Step{"check_iterations", 5, "Vérification du nombre d'itérations..."}
	PrepareRepository = Step{"prepare_repository", 20, "Préparation du repository..."}
	LoadConversation  = Step{"load_conversation", 30, "Chargement de la conversation LLM..."}
	CallLLM           = Step{"call_llm", 50, "Génération du code avec le LLM..."}
	CommitChanges     = Step{"commit_changes", 70, "Commit des modifications..."}
	RunCI             = Step{"run_ci", 85, "Exécution des tests..."}
	HandleCIResult    = Step{"handle_ci_result", 95, "Traitement du résultat CI..."}
	AwaitValidation   = Step{"await_validation", 100, "En attente de validation humaine"}
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

// Messages shown to people for run-level transitions.
const (
	MessagePending   = "Traitement en cours de démarrage..."
	MessageCompleted = "CI réussie : en attente de validation humaine"
	MessageFailed    = "Erreur lors du traitement"
	MessageCancelled = "Traitement annulé"
	MessageValidated = "Modifications validées"
	MessageRejected  = "Demande de traitement refusée"
)
