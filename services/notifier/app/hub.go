package app

import (
	"container/list"
	"context"
	"hash/maphash"
	"sync"

	"github.com/ticketflow/ticketflow/libs/events"
)

// subscriber is what the hub fans out to. push must not block; ok false means the
// subscriber's queue overflowed and it must be dropped (it closes itself with 1013); inline
// true means the caller owes writeInline(it), made outside the hub's lock (see Session.push).
type subscriber interface {
	push(it *item, mayInline bool) (ok, inline bool)
	writeInline(it *item)
}

// ticket is what the notifier knows about one ticket, all of it learned from the stream.
type ticket struct {
	id        string
	partition int32
	owner     string // from TicketCreated ("" until known; then the database is asked)
	runStart  int64  // offset of the latest TicketProcessingRequested, -1 if none
	last      int64  // offset of the ticket's latest event, -1 if none
	state     *item  // latest status_update item (current state), nil if none

	// ring holds the ticket's most recent events in offset order. Every event of the ticket
	// with offset > covered is in it: cursors at or after covered are served from memory.
	ring    ring
	covered int64
	lru     *list.Element

	subs map[subscriber]struct{}

	// seen holds the ticket's most recent event ids, to recognise a copy appended again.
	seen idWindow
}

// hub is the notifier's in-memory state: the live position of every partition, the ticket
// index and histories, and the subscribers. One mutex guards it; the consumer holds it only
// to apply one record and fan it out (non-blocking pushes), registrations only to snapshot.
type hub struct {
	perTicket int
	maxBytes  int64
	window    int // event ids remembered per ticket for duplicate detection
	seed      maphash.Seed
	m         *Metrics

	mu      sync.Mutex
	tickets map[string]*ticket
	global  map[subscriber]struct{}
	pos     map[int32]int64 // offset of the last applied record per partition
	first   map[int32]int64 // first offset the consumer applied per partition
	bytes   int64           // memory held by all rings
	lru     *list.List      // tickets with history, most recently appended first
	moved   chan struct{}   // closed (and replaced) whenever pos advances
	closed  bool
	// dups are the offsets of records that repeat an earlier event of their ticket, per
	// partition. Live fan-out and the rings never hold them; replays from Kafka skip them.
	// They are rare (a retried append), so all of them are kept, up to maxDupOffsets.
	dups     map[int32]map[int64]struct{}
	dupCount int
}

// maxDupOffsets bounds the duplicate record; past it, duplicates are still kept from live
// clients and memory replays, but a Kafka replay of them would repeat them.
const maxDupOffsets = 1 << 20

func newHub(cfg Config, m *Metrics) *hub {
	return &hub{
		perTicket: cfg.HistoryPerTicket,
		maxBytes:  cfg.HistoryBytes,
		window:    cfg.DedupeWindow,
		seed:      maphash.MakeSeed(),
		dups:      map[int32]map[int64]struct{}{},
		m:         m,
		tickets:   map[string]*ticket{},
		global:    map[subscriber]struct{}{},
		pos:       map[int32]int64{},
		first:     map[int32]int64{},
		lru:       list.New(),
		moved:     make(chan struct{}),
	}
}

// position returns the last applied offset of partition p (-1 if none).
func (h *hub) position(p int32) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.posLocked(p)
}

func (h *hub) posLocked(p int32) int64 {
	if o, ok := h.pos[p]; ok {
		return o
	}
	return -1
}

// waitPosition blocks until partition p's live position reaches off or ctx ends.
func (h *hub) waitPosition(ctx context.Context, p int32, off int64) bool {
	for {
		h.mu.Lock()
		ok := h.posLocked(p) >= off
		ch := h.moved
		h.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

func (h *hub) ticketLocked(id string, p int32) *ticket {
	t := h.tickets[id]
	if t == nil {
		covered := h.posLocked(p)
		if f, ok := h.first[p]; ok {
			// The consumer has applied every record of p since f: a new ticket's history
			// is complete from there.
			covered = f - 1
		}
		t = &ticket{id: id, partition: p, runStart: -1, last: -1, covered: covered}
		h.tickets[id] = t
	}
	return t
}

// apply records one consumed event and fans its message out, and returns how many sessions
// the item was handed to. With mayInline, the sessions it adds to inline are owed
// writeInline(it) by the caller once the hub's lock is released (a socket write is never
// made under it).
func (h *hub) apply(ev *events.Event, it *item, mayInline bool, inline *[]subscriber) (sessions int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, off := ev.Partition, ev.Offset
	if _, ok := h.first[p]; !ok {
		h.first[p] = off
	}
	t := h.ticketLocked(ev.TicketID, p)
	t.partition = p
	if t.seen.add(maphash.String(h.seed, ev.ID), h.window) {
		// A copy of an event the ticket already has (an append retried after a crash):
		// it changes no state and reaches no client, but the position moves past it.
		h.m.duplicates.Inc()
		if h.dupCount < maxDupOffsets {
			if h.dups[p] == nil {
				h.dups[p] = map[int64]struct{}{}
			}
			h.dups[p][off] = struct{}{}
			h.dupCount++
		}
		h.advanceLocked(p, off)
		return 0
	}
	t.last = off
	if it.owner != "" {
		t.owner = it.owner
	}
	if ev.Type == events.TicketProcessingRequested {
		t.runStart = off
	}
	if it.status {
		t.state = it
	}
	h.remember(t, it)
	sessions = handOver(t.subs, it, mayInline, inline) + handOver(h.global, it, mayInline, inline)
	h.advanceLocked(p, off)
	return sessions
}

// handOver pushes it to every subscriber of subs, drops those that refuse it (their queue is
// full: they close), adds those owed an inline write to inline, and returns how many took it.
func handOver(subs map[subscriber]struct{}, it *item, mayInline bool, inline *[]subscriber) (n int) {
	for s := range subs {
		ok, in := s.push(it, mayInline)
		if !ok {
			delete(subs, s)
			continue
		}
		if in {
			*inline = append(*inline, s)
		}
		n++
	}
	return n
}

// advance records a consumed record that has no client message (unknown type or version,
// undecodable): it is skipped but still moves the position.
func (h *hub) advance(p int32, off int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.first[p]; !ok {
		h.first[p] = off
	}
	h.advanceLocked(p, off)
}

func (h *hub) advanceLocked(p int32, off int64) {
	h.pos[p] = off
	close(h.moved)
	h.moved = make(chan struct{})
}

// remember appends it to the ticket's ring and enforces the per-ticket and global bounds.
func (h *hub) remember(t *ticket, it *item) {
	if h.perTicket <= 0 || h.maxBytes <= 0 {
		t.covered = it.offset
		return
	}
	if ev := t.ring.push(it, h.perTicket); ev != nil {
		t.covered = ev.offset
		h.bytes -= ev.size()
	}
	h.bytes += it.size()
	if t.lru == nil {
		t.lru = h.lru.PushFront(t)
	} else {
		h.lru.MoveToFront(t.lru)
	}
	for h.bytes > h.maxBytes {
		back := h.lru.Back()
		if back == nil {
			break
		}
		victim := back.Value.(*ticket)
		old := victim.ring.popOldest()
		if old == nil {
			h.lru.Remove(back)
			victim.lru = nil
			continue
		}
		victim.covered = old.offset
		h.bytes -= old.size()
		if victim.ring.n == 0 {
			h.lru.Remove(back)
			victim.lru = nil
		}
	}
	h.m.historyBytes.Set(float64(h.bytes))
}

// ticketInfo is a copy of a ticket's index entry.
type ticketInfo struct {
	known     bool
	partition int32
	owner     string
	runStart  int64
}

func (h *hub) lookup(id string) ticketInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.tickets[id]
	if t == nil {
		return ticketInfo{}
	}
	return ticketInfo{known: true, partition: t.partition, owner: t.owner, runStart: t.runStart}
}

// learnOwner records an owner found elsewhere (the database) for a ticket whose TicketCreated
// is no longer in the log.
func (h *hub) learnOwner(id string, p int32, owner string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.ticketLocked(id, p)
	if t.owner == "" {
		t.owner = owner
	}
}

// ticketPlan is what a /ws/tickets/{id} subscriber must replay before live messages, fixed
// atomically with its registration: every event of the ticket with after < offset <= stitch
// is history, every later one arrives through push. Nothing falls between, nothing twice.
type ticketPlan struct {
	partition int32
	stitch    int64   // the partition's live position at registration
	after     int64   // replay events with offset > after
	fromRing  []*item // the history, when memory covers it (fromKafka false)
	fromKafka bool
	state     *item              // the ticket's state at the stitch (for history_unavailable)
	last      int64              // the ticket's last event offset at the stitch
	dups      map[int64]struct{} // fromKafka: offsets of the partition's duplicate records to skip
}

// dupsLocked copies partition p's duplicate offsets (nil when none).
func (h *hub) dupsLocked(p int32) map[int64]struct{} {
	d := h.dups[p]
	if len(d) == 0 {
		return nil
	}
	out := make(map[int64]struct{}, len(d))
	for o := range d {
		out[o] = struct{}{}
	}
	return out
}

// subscribeTicket registers s for ticket id and returns its replay plan. after is the
// client's cursor offset on the ticket's partition; noCursor asks for the current run.
func (h *hub) subscribeTicket(s subscriber, id string, p int32, after int64, noCursor bool) (ticketPlan, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ticketPlan{}, false
	}
	t := h.ticketLocked(id, p)
	plan := ticketPlan{partition: t.partition, stitch: h.posLocked(t.partition), after: after, state: t.state, last: t.last}
	if noCursor {
		plan.after = plan.stitch // nothing to replay...
		if t.runStart >= 0 {
			plan.after = t.runStart - 1 // ...unless a run exists: from its request on
		}
	}
	if plan.after < plan.stitch {
		if plan.after >= t.covered {
			plan.fromRing = t.ring.after(plan.after)
		} else {
			plan.fromKafka = true
			plan.dups = h.dupsLocked(t.partition)
		}
	}
	if t.subs == nil {
		t.subs = map[subscriber]struct{}{}
	}
	t.subs[s] = struct{}{}
	return plan, true
}

// subscribeAll registers s for every ticket and returns the stitch: each partition's live
// position at registration. History is everything at or before it, less the duplicate
// records in dups (per partition).
func (h *hub) subscribeAll(s subscriber) (stitch map[int32]int64, dups map[int32]map[int64]struct{}, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, false
	}
	stitch = make(map[int32]int64, len(h.pos))
	dups = map[int32]map[int64]struct{}{}
	for p, o := range h.pos {
		stitch[p] = o
		if d := h.dupsLocked(p); d != nil {
			dups[p] = d
		}
	}
	h.global[s] = struct{}{}
	return stitch, dups, true
}

func (h *hub) unsubscribe(s subscriber, id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if id == "" {
		delete(h.global, s)
		return
	}
	if t := h.tickets[id]; t != nil {
		delete(t.subs, s)
		if len(t.subs) == 0 {
			t.subs = nil
		}
	}
}

// close refuses new subscribers and returns the current ones (the caller closes them).
func (h *hub) close() []subscriber {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	var out []subscriber
	for s := range h.global {
		out = append(out, s)
	}
	for _, t := range h.tickets {
		for s := range t.subs {
			out = append(out, s)
		}
	}
	return out
}
