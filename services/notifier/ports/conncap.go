package ports

import (
	"sync"
	"time"
)

// connCaps counts this replica's open WebSocket connections per user and per client IP and
// refuses new ones beyond the caps. A slot is reserved before the upgrade (so concurrent
// handshakes cannot overshoot) and held by the session; a reservation whose upgrade never
// produced a session is returned after the handshake timeout.
type connCaps struct {
	perUser int
	perIP   int

	mu     sync.Mutex
	byUser map[string]int
	byIP   map[string]int
}

func newConnCaps(perUser, perIP int) *connCaps {
	return &connCaps{perUser: perUser, perIP: perIP, byUser: map[string]int{}, byIP: map[string]int{}}
}

// connSlot is one reserved connection. Its state is guarded by caps.mu.
type connSlot struct {
	caps     *connCaps
	user, ip string
	timer    *time.Timer
	taken    bool // a session holds it
	released bool
}

// reserve takes a slot for user (may be "" for a connect that will be refused after the
// upgrade) and ip; nil when a cap is reached. The slot is released by release, or after
// orphanAfter unless a session took it.
func (cc *connCaps) reserve(user, ip string, orphanAfter time.Duration) *connSlot {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if (cc.perIP > 0 && cc.byIP[ip] >= cc.perIP) || (user != "" && cc.perUser > 0 && cc.byUser[user] >= cc.perUser) {
		return nil
	}
	s := &connSlot{caps: cc, user: user, ip: ip}
	cc.addLocked(s, 1)
	s.timer = time.AfterFunc(orphanAfter, func() {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if !s.taken {
			s.releaseLocked()
		}
	})
	return s
}

func (cc *connCaps) addLocked(s *connSlot, d int) {
	if cc.byIP[s.ip] += d; cc.byIP[s.ip] <= 0 {
		delete(cc.byIP, s.ip)
	}
	if s.user != "" {
		if cc.byUser[s.user] += d; cc.byUser[s.user] <= 0 {
			delete(cc.byUser, s.user)
		}
	}
}

// take hands the slot to a session, which releases it when it ends.
func (s *connSlot) take() {
	s.caps.mu.Lock()
	defer s.caps.mu.Unlock()
	s.timer.Stop()
	s.taken = true
	if s.released {
		// The upgrade outlasted orphanAfter and the slot was returned: count the session
		// again (over the cap if need be; it is connected already).
		s.released = false
		s.caps.addLocked(s, 1)
	}
}

// release returns the slot (idempotent).
func (s *connSlot) release() {
	s.caps.mu.Lock()
	defer s.caps.mu.Unlock()
	s.timer.Stop()
	s.releaseLocked()
}

func (s *connSlot) releaseLocked() {
	if !s.released {
		s.released = true
		s.caps.addLocked(s, -1)
	}
}

// counts returns the open connections of user and ip (tests, metrics).
func (cc *connCaps) counts(user, ip string) (int, int) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.byUser[user], cc.byIP[ip]
}
