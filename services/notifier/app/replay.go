package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ticketflow/ticketflow/libs/cursor"
	"github.com/ticketflow/ticketflow/libs/workflow"
)

// ticketReplay is what a /ws/tickets/{id} session writes first (its writer runs it): connected,
// the history its plan fixed at registration, then replay_complete.
type ticketReplay struct {
	n      *Notifier
	s      *Session
	req    Request
	plan   ticketPlan
	beyond bool // the cursor is no position of this log
}

func (r *ticketReplay) run(ctx context.Context) error {
	s, id, plan := r.s, r.req.TicketID, r.plan
	hasCursor := r.req.HasCursor
	_ = s.text(TypeConnected, mustJSON(connectedMsg{Type: TypeConnected, TicketID: id, Resumed: hasCursor}))
	if !hasCursor && plan.after >= plan.stitch {
		// No run yet: nothing to replay, but say so, so a client knows that every message
		// from here on is live.
		r.n.m.replays.WithLabelValues("no_run").Inc()
		return s.text(TypeReplayComplete, mustJSON(replayCompleteMsg{Type: TypeReplayComplete, TicketID: id}))
	}
	replayed, gone := 0, r.beyond
	if !gone {
		var err error
		replayed, err = r.n.replayTicket(ctx, s, plan)
		if errors.Is(err, ErrHistoryGone) {
			gone = true
		} else if err != nil {
			return err
		}
	}
	result := "recovered"
	if !hasCursor {
		result = "current_run"
	}
	if gone {
		result = "unavailable"
		r.sendUnavailable()
	}
	r.n.m.replays.WithLabelValues(result).Inc()
	r.n.m.replayed.Add(float64(replayed))
	rc := replayCompleteMsg{Type: TypeReplayComplete, TicketID: id, Replayed: replayed}
	switch {
	case plan.last >= 0 && (gone || plan.after < plan.last):
		rc.Cursor = cursor.Single(plan.partition, plan.last).String()
	case plan.after >= 0:
		rc.Cursor = cursor.Single(plan.partition, plan.after).String()
	}
	return s.text(TypeReplayComplete, mustJSON(rc))
}

// sendUnavailable says the history is gone, then sends the ticket's state at the stitch.
func (r *ticketReplay) sendUnavailable() {
	msg := "the history at this cursor is no longer in the event log; here is the current state"
	if r.beyond {
		msg = "this cursor is not a position of the current event log; here is the current state"
	}
	_ = r.s.text(TypeHistoryUnavailable, mustJSON(historyUnavailableMsg{Type: TypeHistoryUnavailable,
		TicketID: r.req.TicketID, RequestedCursor: r.req.RawCursor, Message: msg}))
	if snap := snapshotMessage(r.req.TicketID, r.plan); snap != nil {
		_ = r.s.text(TypeStatusUpdate, snap)
	}
}

// snapshotMessage is the ticket's state at the stitch, sent after history_unavailable.
func snapshotMessage(id string, plan ticketPlan) []byte {
	if plan.last < 0 {
		return nil
	}
	cur := cursor.Single(plan.partition, plan.last).String()
	if plan.state != nil {
		return snapshotOf(plan.state, cur)
	}
	b, _ := encodeWithCursor(statusUpdateMsg{header: header{Type: TypeStatusUpdate, TicketID: id}, Status: workflow.Idle, Snapshot: true}, []byte(cur))
	return b
}

// replayTicket writes the plan's history: from memory when it covers the cursor, otherwise
// straight from the ticket's partition in Kafka, filtered by key, up to the stitch.
func (n *Notifier) replayTicket(ctx context.Context, s *Session, plan ticketPlan) (int, error) {
	if !plan.fromKafka {
		for _, it := range plan.fromRing {
			if err := s.event(it); err != nil {
				return 0, err
			}
		}
		return len(plan.fromRing), nil
	}
	read := func(ctx context.Context, fn func(Record) error) error {
		return n.events.Read(ctx, plan.partition, plan.after+1, plan.stitch, func(rec Record) error {
			if string(rec.Key) != s.ticketID {
				return nil
			}
			if _, dup := plan.dups[rec.Offset]; dup {
				return nil
			}
			return fn(rec)
		})
	}
	return decodeInOrder(ctx, read, func(it *item) bool { return it.ticketID == s.ticketID }, s.event)
}

// allReplay is what a /ws/tickets session writes first: connected, then (with a cursor) every
// partition from the cursor up to the stitch, then replay_complete.
type allReplay struct {
	n      *Notifier
	s      *Session
	req    Request
	stitch map[int32]int64
	dups   map[int32]map[int64]struct{}
}

func (r *allReplay) run(ctx context.Context) error {
	s := r.s
	if !r.req.HasCursor {
		s.cur = cursor.Cursor(r.stitch).Clone()
		return s.text(TypeConnected, mustJSON(connectedMsg{Type: TypeConnected, TicketID: "*", Cursor: s.cur.String()}))
	}
	_ = s.text(TypeConnected, mustJSON(connectedMsg{Type: TypeConnected, TicketID: "*", Resumed: true}))
	s.cur = r.req.Cursor.Clone()
	replayed, gone := 0, []string{}
	for p, end := range r.stitch {
		after, ok := r.req.Cursor[p]
		if !ok {
			after = -1
		}
		if after > end {
			// Not a position of this log: restart this partition from its beginning.
			gone = append(gone, fmt.Sprintf("%d", p))
			after = -1
			delete(s.cur, p)
		}
		if after >= end {
			continue
		}
		n, lost, err := r.replayPartition(ctx, p, after+1, end)
		replayed += n
		if err != nil {
			return err
		}
		if lost {
			gone = append(gone, fmt.Sprintf("%d", p))
		}
	}
	result := "recovered"
	if len(gone) > 0 {
		result = "unavailable"
		_ = s.text(TypeHistoryUnavailable, mustJSON(historyUnavailableMsg{Type: TypeHistoryUnavailable, TicketID: "*",
			RequestedCursor: r.req.RawCursor,
			Message:         "history is gone on partitions " + strings.Join(gone, ",") + "; they were replayed from the oldest event still in the log"}))
	}
	r.n.m.replays.WithLabelValues(result).Inc()
	r.n.m.replayed.Add(float64(replayed))
	return s.text(TypeReplayComplete, mustJSON(replayCompleteMsg{Type: TypeReplayComplete, TicketID: "*",
		Cursor: s.cur.String(), Replayed: replayed}))
}

// replayPartition writes partition p's events from offset from to end; when from is no longer
// in the log (lost), from the oldest event still there.
func (r *allReplay) replayPartition(ctx context.Context, p int32, from, end int64) (replayed int, lost bool, err error) {
	write := func(rec Record) error {
		if _, dup := r.dups[p][rec.Offset]; dup {
			return nil
		}
		it, ok := decodeRecord(rec)
		if !ok {
			return nil
		}
		replayed++
		return r.s.event(it)
	}
	err = r.n.events.Read(ctx, p, from, end, write)
	if errors.Is(err, ErrHistoryGone) {
		starts, serr := r.n.events.Starts(ctx)
		if serr != nil {
			return replayed, true, serr
		}
		lost = true
		err = r.n.events.Read(ctx, p, starts[p], end, write)
	}
	return replayed, lost, err
}

func decodeRecord(rec Record) (*item, bool) {
	ev, err := rec.event()
	if err != nil {
		return nil, false
	}
	return newItem(ev)
}
