package workflow

import (
	"fmt"

	"github.com/ticketflow/ticketflow/libs/events"
)

// Update is what an event does to a ticket's visible state: the fields of the brief's
// status_update message. Events that change no status yield ok=false from StatusUpdate.
type Update struct {
	Status   Status
	Step     string
	Progress int
	Message  string
	Error    string
}

// StatusUpdate maps an event to the ticket status it announces, the one place where the
// brief's status sequence (PENDING 0 → IN_PROGRESS step/progress → COMPLETED 100 | FAILED |
// CANCELLED → VALIDATED) is derived from events. The projector, the notifier and the
// processor all use it, so a ticket looks the same in the tables and on the socket.
func StatusUpdate(env events.Envelope, payload events.Payload) (Update, bool) {
	switch p := payload.(type) {
	case *events.ProcessingRequestedData:
		return Update{Status: Pending, Progress: 0, Message: MessagePending}, true
	case *events.StepStartedData:
		msg := p.Message
		if msg == "" {
			if s, ok := StepByName(p.Step); ok {
				msg = s.Message
			}
		}
		if p.Attempt > 1 {
			msg = fmt.Sprintf(MessageRetriedStep, msg, p.Attempt)
		}
		return Update{Status: InProgress, Step: p.Step, Progress: p.Progress, Message: msg}, true
	case *events.RunCompletedData:
		msg := p.Message
		if msg == "" {
			msg = MessageCompleted
		}
		return Update{Status: Completed, Step: AwaitValidation.Name, Progress: AwaitValidation.Progress, Message: msg}, true
	case *events.RunFailedData:
		msg := p.Message
		if msg == "" {
			msg = MessageFailed
		}
		errText := p.Error
		if errText == "" {
			errText = msg
		}
		return Update{Status: Failed, Step: p.Step, Message: msg, Error: errText}, true
	case *events.RunCancelledData:
		msg := p.Message
		if msg == "" {
			msg = MessageCancelled
		}
		return Update{Status: Cancelled, Step: p.Step, Message: msg, Error: p.Reason}, true
	case *events.ValidationApprovedData:
		return Update{Status: Validated, Step: AwaitValidation.Name, Progress: 100, Message: MessageValidated}, true
	}
	return Update{}, false
}
