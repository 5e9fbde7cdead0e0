package app

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"

	fastjson "github.com/segmentio/encoding/json"

	"github.com/ticketflow/ticketflow/libs/cursor"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/workflow"
)

// Message types sent to clients. Event-derived messages carry the common fields of header.
const (
	TypeConnected          = "connected"
	TypeStatusUpdate       = "status_update"
	TypeLog                = "log"
	TypeCIResult           = "ci_result"
	TypeTicketCreated      = "ticket_created"
	TypeRunStarted         = "run_started"
	TypeStepCompleted      = "step_completed"
	TypeRunRejected        = "run_rejected"
	TypeCancelRequested    = "cancel_requested"
	TypeChangesRequested   = "changes_requested"
	TypeLogTruncated       = "log_truncated"
	TypeRunResumed         = "run_resumed"
	TypeAgentTool          = "agent_tool"
	TypeLLMCall            = "llm_call"
	TypeRepositoryConfig   = "repository_config"
	TypeReplayComplete     = "replay_complete"
	TypeHistoryUnavailable = "history_unavailable"
	TypePong               = "pong"
	TypeError              = "error"
)

// header is what every event-derived message starts with. The cursor is appended last by
// item.message / item.messageWith so one encoding serves every subscriber.
type header struct {
	Type      string `json:"type"`
	TicketID  string `json:"ticket_id"`
	Timestamp string `json:"timestamp"`
	EventID   string `json:"event_id"`
	RunID     string `json:"run_id"`
}

type statusUpdateMsg struct {
	header
	Status   workflow.Status `json:"status"`
	Message  string          `json:"message"`
	Step     string          `json:"step"`
	Progress int             `json:"progress"`
	Error    *string         `json:"error,omitempty"`
	Snapshot bool            `json:"snapshot,omitempty"`
}

type logMsg struct {
	header
	Level   string `json:"level"`
	Message string `json:"message"`
	Step    string `json:"step,omitempty"`
	Stream  string `json:"stream,omitempty"`
}

type ciResultMsg struct {
	header
	Passed     bool   `json:"passed"`
	ExitCode   int    `json:"exit_code"`
	DurationMS int64  `json:"duration_ms"`
	Iteration  int    `json:"iteration"`
	OutputTail string `json:"output_tail"`
}

type ticketCreatedMsg struct {
	header
	Title         string `json:"title"`
	Owner         string `json:"owner"`
	RepositoryURL string `json:"repository_url"`
	BaseBranch    string `json:"base_branch"`
}

type runStartedMsg struct {
	header
	Iteration     int    `json:"iteration"`
	MaxIterations int    `json:"max_iterations"`
	Executor      string `json:"executor"`
}

// stepCompletedMsg is the header followed by the event's own fields, as the catalog defines them.
type stepCompletedMsg struct {
	header
	events.StepCompletedData
}

type runRejectedMsg struct {
	header
	Reason      string `json:"reason"`
	ActiveRunID string `json:"active_run_id,omitempty"`
}

type cancelRequestedMsg struct {
	header
	RequestedBy string `json:"requested_by"`
}

type changesRequestedMsg struct {
	header
	RequestedBy string `json:"requested_by"`
	Comment     string `json:"comment"`
	NextRunID   string `json:"next_run_id"`
}

// logTruncatedMsg is the header followed by the event's own fields, as the catalog defines them.
type logTruncatedMsg struct {
	header
	events.LogTruncatedData
}

// agentToolMsg and llmCallMsg are the header followed by the event's own fields.
type agentToolMsg struct {
	header
	events.AgentToolCalledData
}

type llmCallMsg struct {
	header
	events.LLMCallCompletedData
}

// repositoryConfigMsg is the header followed by the event's own fields.
type repositoryConfigMsg struct {
	header
	events.RepositoryConfigLoadedData
}

type runResumedMsg struct {
	header
	Owner         string `json:"owner"`
	PreviousOwner string `json:"previous_owner,omitempty"`
	Step          string `json:"step,omitempty"`
	Attempt       int    `json:"attempt,omitempty"`
	Iteration     int    `json:"iteration,omitempty"`
}

// item is one event turned into its client message, encoded once and shared by the history
// ring and every subscriber's queue. msg is the complete per-ticket message; msg[:cut] is the
// same JSON object without its cursor and closing brace, to which /ws/tickets subscribers
// append their merged cursor.
type item struct {
	partition  int32
	offset     int64
	ticketID   string
	eventID    string
	typ        string // message type, for metrics
	occurredAt time.Time
	msg        []byte
	cut        int
	status     bool        // a status_update: the ticket's state as of this event
	evType     events.Type // the event's type
	owner      string      // TicketCreated only: the ticket's owner
}

// size approximates the memory an item holds, for the history budget.
func (it *item) size() int64 { return int64(len(it.msg)+len(it.ticketID)) + 96 }

// message returns the per-ticket message (cursor = this event's single position).
func (it *item) message() []byte { return it.msg }

// messageWith appends the message with another cursor (the merged cursor of /ws/tickets).
func (it *item) messageWith(dst []byte, cur string) []byte {
	dst = append(dst, it.msg[:it.cut]...)
	dst = append(dst, `,"cursor":`...)
	dst = strconv.AppendQuote(dst, cur)
	return append(dst, '}')
}

// newItem decodes an event into its message. ok is false for events that have no client
// message (unknown types or versions, undecodable payloads): they are skipped, never fatal.
func newItem(ev events.Event) (*item, bool) {
	payload, err := ev.Decode()
	if err != nil {
		return nil, false
	}
	h := header{
		TicketID:  ev.TicketID,
		Timestamp: ev.OccurredAt.UTC().Format(time.RFC3339Nano),
		EventID:   ev.ID,
		RunID:     ev.RunID,
	}
	var body any
	status, owner := false, ""
	if u, ok := workflow.StatusUpdate(ev.Envelope, payload); ok {
		h.Type = TypeStatusUpdate
		body, status = statusBody(h, u, false), true
	} else {
		switch p := payload.(type) {
		case *events.LogEmittedData:
			h.Type = TypeLog
			body = logMsg{h, p.Level, p.Message, p.Step, p.Stream}
		case *events.CIResultData:
			h.Type = TypeCIResult
			body = ciResultMsg{h, p.Passed, p.ExitCode, p.DurationMS, p.Iteration, p.OutputTail}
		case *events.TicketCreatedData:
			h.Type = TypeTicketCreated
			body = ticketCreatedMsg{h, p.Title, p.Owner, p.RepositoryURL, p.BaseBranch}
			owner = p.Owner
		case *events.RunStartedData:
			h.Type = TypeRunStarted
			body = runStartedMsg{h, p.Iteration, p.MaxIterations, p.Executor}
		case *events.StepCompletedData:
			h.Type = TypeStepCompleted
			body = stepCompletedMsg{h, *p}
		case *events.RunRejectedData:
			h.Type = TypeRunRejected
			body = runRejectedMsg{h, p.Reason, p.ActiveRunID}
		case *events.CancelRequestedData:
			h.Type = TypeCancelRequested
			body = cancelRequestedMsg{h, p.RequestedBy}
		case *events.ChangesRequestedData:
			h.Type = TypeChangesRequested
			body = changesRequestedMsg{h, p.RequestedBy, p.Comment, p.NextRunID}
		case *events.LogTruncatedData:
			h.Type = TypeLogTruncated
			body = logTruncatedMsg{h, *p}
		case *events.AgentToolCalledData:
			h.Type = TypeAgentTool
			body = agentToolMsg{h, *p}
		case *events.LLMCallCompletedData:
			h.Type = TypeLLMCall
			body = llmCallMsg{h, *p}
		case *events.RepositoryConfigLoadedData:
			h.Type = TypeRepositoryConfig
			body = repositoryConfigMsg{h, *p}
		case *events.RunResumedData:
			h.Type = TypeRunResumed
			body = runResumedMsg{h, p.Owner, p.PreviousOwner, p.Step, p.Attempt, p.Iteration}
		default:
			return nil, false
		}
	}
	it := &item{
		partition:  ev.Partition,
		offset:     ev.Offset,
		ticketID:   ev.TicketID,
		eventID:    ev.ID,
		typ:        h.Type,
		occurredAt: ev.OccurredAt,
		status:     status,
		evType:     ev.Type,
		owner:      owner,
	}
	var cur [40]byte
	it.msg, it.cut = encodeWithCursor(body, cursor.AppendSingle(cur[:0], ev.Partition, ev.Offset))
	return it, true
}

func statusBody(h header, u workflow.Update, snapshot bool) statusUpdateMsg {
	m := statusUpdateMsg{header: h, Status: u.Status, Message: u.Message, Step: u.Step, Progress: u.Progress, Snapshot: snapshot}
	if u.Status == workflow.Failed || u.Status == workflow.Cancelled {
		e := u.Error
		m.Error = &e
	}
	return m
}

// encodeWithCursor marshals body (a JSON object) and appends a "cursor" member. It returns
// the encoding and the index where the cursor member starts. The encoding is segmentio's
// (the same bytes as encoding/json's, HTML escaping included: TestEncodingMatchesStdlib) into
// a scratch buffer, then one copy of the exact size: every event is encoded once, and on a
// long replay from Kafka this is a third of the cost per record.
func encodeWithCursor(body any, cur []byte) ([]byte, int) {
	scratch := encodePool.Get().(*[]byte)
	defer encodePool.Put(scratch)
	b, err := fastjson.Append((*scratch)[:0], body, fastjson.EscapeHTML)
	if err != nil || len(b) < 2 || b[len(b)-1] != '}' {
		// Every body is a plain struct of strings and numbers; this cannot happen.
		panic("notifier: message encoding failed")
	}
	if cap(b) <= 64<<10 { // a huge message's buffer is not kept
		*scratch = b
	}
	cut := len(b) - 1
	out := make([]byte, 0, cut+len(cur)+len(`,"cursor":""}`))
	out = append(out, b[:cut]...)
	out = append(out, `,"cursor":"`...)
	out = append(out, cur...) // a cursor's characters need no escaping: v1.<p>-<o>
	out = append(out, `"}`...)
	return out, cut
}

var encodePool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// snapshotOf re-encodes a status item as the "current state" message sent after
// history_unavailable: same fields, "snapshot":true, and the given cursor (the ticket's last
// event at the stitch point, so a resume from it loses nothing that exists).
func snapshotOf(it *item, cur string) []byte {
	var m statusUpdateMsg
	if err := json.Unmarshal(it.msg, &m); err != nil {
		return nil
	}
	m.Snapshot = true
	b, _ := encodeWithCursor(m, []byte(cur))
	return b
}

type connectedMsg struct {
	Type     string `json:"type"`
	TicketID string `json:"ticket_id"`
	Resumed  bool   `json:"resumed"`
	Cursor   string `json:"cursor,omitempty"`
}

type replayCompleteMsg struct {
	Type     string `json:"type"`
	TicketID string `json:"ticket_id"`
	Cursor   string `json:"cursor,omitempty"`
	Replayed int    `json:"replayed"`
}

type historyUnavailableMsg struct {
	Type            string `json:"type"`
	TicketID        string `json:"ticket_id"`
	RequestedCursor string `json:"requested_cursor"`
	Message         string `json:"message"`
}

type errorMsg struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

var pongMsg = []byte(`{"type":"pong"}`)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
