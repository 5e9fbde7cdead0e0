package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/cursor"
)

// Request is what a connection asks for, its credential verified and its parameters parsed.
type Request struct {
	Claims *auth.Claims
	// TicketID is the ticket streamed; "" streams every ticket (admins only).
	TicketID string
	// HasCursor: the client resumes after Cursor (RawCursor as it sent it).
	HasCursor bool
	Cursor    cursor.Cursor
	RawCursor string
}

// Refusal is a connection refused after the upgrade: an error message, then a close frame
// with Code whose reason is ErrCode.
type Refusal struct {
	Code    int
	ErrCode string
	Message string
}

func (r *Refusal) Error() string { return r.Message }

// Refuse builds a Refusal.
func Refuse(code int, errCode, format string, args ...any) *Refusal {
	return &Refusal{Code: code, ErrCode: errCode, Message: fmt.Sprintf(format, args...)}
}

var (
	refuseCatchingUp = func() *Refusal {
		return Refuse(CloseTryAgain, "catching_up", "this server is still catching up with the event log; retry")
	}
	refuseGoingAway = func() *Refusal { return Refuse(CloseGoingAway, "going_away", "server shutting down") }
)

// Open authorises req, registers s for it and starts s's writer: connected, the replay fixed
// at registration, replay_complete, then live messages. When the connect is refused it writes
// the refusal and returns false (s is not registered; the caller lets the peer answer).
func (n *Notifier) Open(ctx context.Context, s *Session, req Request) bool {
	var replay func() error
	var err error
	if s.global {
		replay, err = n.openAll(ctx, s, req)
	} else {
		replay, err = n.openTicket(ctx, s, req)
	}
	if err != nil {
		var r *Refusal
		if !errors.As(err, &r) {
			n.log.Warn("websocket setup failed", "ticket_id", s.ticketID, "err", err)
			r = Refuse(CloseTryAgain, "unavailable", "the event log is unavailable; retry later")
		}
		n.Refuse(s, r)
		return false
	}
	s.start(replay)
	return true
}

// Refuse writes r to a session that will not be opened (counted by its error code).
func (n *Notifier) Refuse(s *Session, r *Refusal) {
	n.m.Rejected(r.ErrCode)
	_ = s.text(TypeError, mustJSON(errorMsg{Type: TypeError, Code: r.ErrCode, Message: r.Message}))
	s.writeClose(r.Code, r.ErrCode)
	s.release()
}

// Close unregisters an opened session.
func (n *Notifier) Close(s *Session) { n.hub.unsubscribe(s, s.ticketID) }

// openTicket authorises a /ws/tickets/{id} connection, registers it and returns its replay.
func (n *Notifier) openTicket(ctx context.Context, s *Session, req Request) (func() error, error) {
	info, err := n.authorizeTicket(ctx, req)
	if err != nil {
		return nil, err
	}
	p := info.partition
	after, beyond := int64(-1), false
	if req.HasCursor {
		after = ticketAfter(req.Cursor, p)
		// Still ahead after catching up: not a position of this log (recreated topic, or a
		// cursor from elsewhere). History cannot be stitched: say so.
		beyond = after > n.hub.position(p)
	}
	plan, ok := n.hub.subscribeTicket(s, req.TicketID, p, after, !req.HasCursor)
	if !ok {
		return nil, refuseGoingAway()
	}
	if beyond {
		plan.after, plan.fromRing, plan.fromKafka = plan.stitch, nil, false
	}
	r := &ticketReplay{n: n, s: s, req: req, plan: plan, beyond: beyond}
	return func() error { return r.run(ctx) }, nil
}

// authorizeTicket finds the ticket (catching up with the log when it matters) and checks
// that the bearer may see it.
func (n *Notifier) authorizeTicket(ctx context.Context, req Request) (ticketInfo, error) {
	id := req.TicketID
	if err := n.catchUpFor(ctx, id, req); err != nil {
		return ticketInfo{}, err
	}
	info := n.hub.lookup(id)
	if !info.known || info.owner == "" {
		owner, p, found, err := n.ownerFromDB(ctx, id)
		if err != nil {
			return ticketInfo{}, err
		}
		if !found {
			return ticketInfo{}, Refuse(CloseNotFound, "not_found", "unknown ticket %q", id)
		}
		if !info.known {
			info.partition = p
		}
		n.hub.learnOwner(id, info.partition, owner)
		info = n.hub.lookup(id)
	}
	if !req.Claims.CanAccess(info.owner) {
		return ticketInfo{}, Refuse(CloseForbidden, "forbidden", "you may not see ticket %q", id)
	}
	return info, nil
}

// catchUpFor makes sure everything appended before this connect has been applied when it
// matters: an unknown ticket (created a moment ago?), no cursor (is there a newer run?), or a
// cursor ahead of this replica (the client comes from a faster one).
func (n *Notifier) catchUpFor(ctx context.Context, id string, req Request) error {
	info := n.hub.lookup(id)
	var err error
	switch {
	case !info.known:
		err = n.catchUp(ctx)
	case !req.HasCursor:
		err = n.catchUp(ctx, info.partition)
	default:
		if o, ok := req.Cursor[info.partition]; ok && o > n.hub.position(info.partition) {
			if err := n.catchUp(ctx, info.partition); errors.Is(err, errCatchingUp) {
				return refuseCatchingUp()
			} else if err != nil {
				return err
			}
		}
	}
	if errors.Is(err, errCatchingUp) {
		return nil // served with what this replica has
	}
	return err
}

// openAll authorises a /ws/tickets connection (admins only), registers it and returns its
// replay. With a cursor, every partition is replayed from Kafka up to the stitch; without, the
// client starts live and connected carries the cursor of the stitch.
func (n *Notifier) openAll(ctx context.Context, s *Session, req Request) (func() error, error) {
	if !req.Claims.IsAdmin() {
		return nil, Refuse(CloseForbidden, "forbidden", "the all-tickets stream is for admins only")
	}
	if req.HasCursor && n.aheadOfLog(req.Cursor) {
		if err := n.catchUp(ctx); errors.Is(err, errCatchingUp) {
			return nil, refuseCatchingUp()
		} else if err != nil {
			return nil, err
		}
	}
	stitch, dups, ok := n.hub.subscribeAll(s)
	if !ok {
		return nil, refuseGoingAway()
	}
	r := &allReplay{n: n, s: s, req: req, stitch: stitch, dups: dups}
	return func() error { return r.run(ctx) }, nil
}

// aheadOfLog reports whether c is past this replica's position on some partition.
func (n *Notifier) aheadOfLog(c cursor.Cursor) bool {
	for p, o := range c {
		if o > n.hub.position(p) {
			return true
		}
	}
	return false
}

// ticketAfter is the offset after which a ticket on partition p resumes: the cursor's pair for
// p, or -1 (from the start of the log) when the cursor has none (an empty "v1" cursor, or an
// all-tickets cursor that never saw p).
func ticketAfter(c cursor.Cursor, p int32) int64 {
	if o, ok := c[p]; ok {
		return o
	}
	return -1
}
