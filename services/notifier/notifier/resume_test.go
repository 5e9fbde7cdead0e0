package notifier

import (
	"context"
	"fmt"
	"github.com/ticketflow/ticketflow/services/notifier/app"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/cursor"
	"github.com/ticketflow/ticketflow/libs/events"
)

// servers is the set of notifier instances clients may connect to right now.
type servers struct {
	mu    sync.Mutex
	addrs []string
}

func (s *servers) pick(r *rand.Rand) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[r.IntN(len(s.addrs))]
}

func (s *servers) set(addrs ...string) {
	s.mu.Lock()
	s.addrs = addrs
	s.mu.Unlock()
}

// resumer is one client that keeps disconnecting at random moments and resuming with the
// last cursor it received, on whichever instance it picks.
type resumer struct {
	name     string
	ticket   string // "" = /ws/tickets
	token    string
	cur      string
	got      []string // event ids in order of receipt
	perPart  map[int32]int64
	sessions int
	errs     []string
}

func (r *resumer) fail(format string, args ...any) {
	if len(r.errs) < 5 {
		r.errs = append(r.errs, fmt.Sprintf(format, args...))
	}
}

// session connects once and reads until hold elapses or the server closes.
func (r *resumer) session(addr string, hold time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), hold)
	defer cancel()
	o := dialOpts{token: r.token, cursor: strptr(r.cur)}
	if r.ticket == "" {
		o.path = "/ws/tickets"
	}
	c, _, err := dialWS(ctx, addr, r.ticket, o)
	if err != nil {
		return // instance going down or hold too short: try again
	}
	defer c.close()
	r.sessions++
	for {
		m, err := c.read(hold)
		if err != nil {
			return
		}
		switch m.Type {
		case app.TypeConnected, app.TypeReplayComplete, app.TypePong:
			continue
		case app.TypeHistoryUnavailable, app.TypeError:
			r.fail("%s: unexpected %s", r.name, m.raw)
			return
		}
		if m.EventID == "" || m.Cursor == "" {
			r.fail("%s: event message without event_id/cursor: %s", r.name, m.raw)
			return
		}
		cur, err := cursor.Parse(m.Cursor)
		if err != nil {
			r.fail("%s: bad cursor %q", r.name, m.Cursor)
			return
		}
		if r.ticket != "" && len(cur) != 1 {
			r.fail("%s: ticket cursor %q has %d partitions", r.name, m.Cursor, len(cur))
		}
		// Cursors alone prove order: every partition's offset only moves forward.
		advanced := 0
		for p, o := range cur {
			if prev, ok := r.perPart[p]; ok && o < prev {
				r.fail("%s: cursor went back on partition %d: %d < %d", r.name, p, o, prev)
			} else if !ok || o > prev {
				advanced++
			}
			r.perPart[p] = o
		}
		if advanced != 1 {
			r.fail("%s: message %s advanced %d partitions", r.name, m.Cursor, advanced)
		}
		r.got = append(r.got, m.EventID)
		r.cur = m.Cursor
	}
}

// TestRandomizedResume: many clients on many tickets disconnect at random moments and resume
// by cursor while events keep coming, hopping between two notifier instances (one with a
// tiny in-memory history, so most resumes read Kafka), with one instance restarted midway.
// Every client's sequence must equal its ticket's events in the log: no gap, no duplicate,
// same order.
func TestRandomizedResume(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	e := newTestEnv(t, 4)

	const tickets = 12
	ids := make([]string, tickets)
	for i := range ids {
		ids[i] = newTicketID(fmt.Sprintf("rr%d", i))
		e.append(created(ids[i], fmt.Sprintf("user%d", i%3)))
	}

	cfgA := testConfig()
	cfgB := testConfig()
	cfgB.HistoryPerTicket = 4 // most resumes on B come from Kafka
	a := e.start(cfgA)
	b := e.start(cfgB)
	pool := &servers{}
	pool.set(a.addr, b.addr)

	var clients []*resumer
	for i, id := range ids {
		for k := 0; k < 2; k++ {
			clients = append(clients, &resumer{name: fmt.Sprintf("t%d/%d", i, k), ticket: id,
				token: e.token(fmt.Sprintf("user%d", i%3), "user"), cur: "v1", perPart: map[int32]int64{}})
		}
	}
	for k := 0; k < 2; k++ {
		clients = append(clients, &resumer{name: fmt.Sprintf("all/%d", k), token: e.token("root", "admin"),
			cur: "v1", perPart: map[int32]int64{}})
	}

	// Producer: runs and log bursts on random tickets for a few seconds.
	var producing atomic.Bool
	producing.Store(true)
	prodDone := make(chan int)
	go func() {
		prng := rand.New(rand.NewPCG(seed, 11))
		total := 0
		deadline := time.Now().Add(4 * time.Second)
		for run := 0; time.Now().Before(deadline); run++ {
			id := ids[prng.IntN(tickets)]
			var batch []events.Envelope
			if prng.IntN(3) == 0 {
				batch = runEvents(id, fmt.Sprintf("run-%d", run), "processor")
			} else {
				batch = logEvents(id, fmt.Sprintf("run-%d", run), 1+prng.IntN(20))
			}
			pos, err := e.prod.Append(context.Background(), batch...)
			if err != nil {
				t.Errorf("append: %v", err)
				break
			}
			total += len(pos)
			time.Sleep(time.Duration(prng.IntN(8)) * time.Millisecond)
		}
		producing.Store(false)
		prodDone <- total
	}()

	// Restart instance A midway: a fresh process that rebuilds its state from the log.
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		time.Sleep(2 * time.Second)
		pool.set(b.addr)
		a.stop()
		a2 := e.start(cfgA)
		pool.set(a2.addr, b.addr)
	}()

	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		crng := rand.New(rand.NewPCG(seed, uint64(100+i)))
		go func() {
			defer wg.Done()
			for producing.Load() {
				c.session(pool.pick(crng), time.Duration(5+crng.IntN(250))*time.Millisecond)
			}
		}()
	}
	total := <-prodDone
	wg.Wait()
	<-restarted

	// The reference: the log itself, read by an independent consumer.
	logByTicket := map[string][]string{}
	for _, ev := range e.allEvents() {
		logByTicket[ev.TicketID] = append(logByTicket[ev.TicketID], ev.ID)
	}
	t.Logf("%d events produced over %d tickets", total, tickets)

	// Final resume: each client catches up fully and must hold exactly the log.
	for i, c := range clients {
		wg.Add(1)
		crng := rand.New(rand.NewPCG(seed, uint64(1000+i)))
		go func() {
			defer wg.Done()
			want := 0
			if c.ticket == "" {
				for _, l := range logByTicket {
					want += len(l)
				}
			} else {
				want = len(logByTicket[c.ticket])
			}
			deadline := time.Now().Add(30 * time.Second)
			for len(c.got) < want && len(c.errs) == 0 && time.Now().Before(deadline) {
				c.session(pool.pick(crng), 2*time.Second)
			}
		}()
	}
	wg.Wait()

	sessions := 0
	for _, c := range clients {
		sessions += c.sessions
		for _, err := range c.errs {
			t.Error(err)
		}
		if c.ticket != "" {
			if !slices.Equal(c.got, logByTicket[c.ticket]) {
				t.Errorf("%s: received %d events, log has %d; first difference at %d", c.name, len(c.got),
					len(logByTicket[c.ticket]), firstDiff(c.got, logByTicket[c.ticket]))
			}
			continue
		}
		// /ws/tickets: per ticket, the subsequence must equal that ticket's log.
		byTicket := map[string][]string{}
		owner := map[string]string{}
		for tk, l := range logByTicket {
			for _, id := range l {
				owner[id] = tk
			}
		}
		for _, id := range c.got {
			byTicket[owner[id]] = append(byTicket[owner[id]], id)
		}
		for tk, l := range logByTicket {
			if !slices.Equal(byTicket[tk], l) {
				t.Errorf("%s: ticket %s: received %d events, log has %d; first difference at %d", c.name, tk,
					len(byTicket[tk]), len(l), firstDiff(byTicket[tk], l))
			}
		}
	}
	t.Logf("%d clients, %d sessions (each a disconnect and a resume)", len(clients), sessions)
	if sessions < 4*len(clients) {
		t.Errorf("only %d sessions: the test did not exercise resumes", sessions)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
