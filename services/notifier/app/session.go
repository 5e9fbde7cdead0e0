package app

import (
	"encoding/binary"
	"net"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/ticketflow/ticketflow/libs/cursor"
)

// WebSocket opcodes and close codes used here (RFC 6455 §5.2, §7.4; 4xxx are ours).
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA

	CloseNormal       = 1000
	CloseGoingAway    = 1001
	CloseUnsupported  = 1003
	ClosePolicy       = 1008
	CloseTooBig       = 1009
	CloseTryAgain     = 1013
	CloseBadRequest   = 4400
	CloseUnauthorized = 4401
	CloseForbidden    = 4403
	CloseNotFound     = 4404
)

// qent is one queued outgoing message: an event item, or a pre-encoded frame payload.
type qent struct {
	it  *item
	raw []byte
	op  byte
}

// session is one WebSocket connection. The hub pushes into its bounded queue without ever
// blocking; exactly one writer goroutine drains the queue into the socket. The writer frames
// messages itself and writes every frame queued at that moment with one syscall (one JSON
// message per frame, many frames per write), which is what makes fan-out cheap.
type session struct {
	n        *Notifier
	ws       *websocket.Conn
	nc       net.Conn
	ticketID string // "" for /ws/tickets
	global   bool

	mu        sync.Mutex
	queue     []qent
	qbytes    int
	stopped   bool
	overflow  bool
	closeCode int
	closeText string
	wake      chan struct{}
	done      chan struct{}

	// Writer-owned state.
	cur    cursor.Cursor // /ws/tickets: merged cursor of everything delivered
	out    []byte
	live   bool // past replay: observe delivery latency
	spare  []qent
	closed bool
}

func newSession(n *Notifier, ws *websocket.Conn, ticketID string) *session {
	return &session{
		n:        n,
		ws:       ws,
		nc:       ws.NetConn(),
		ticketID: ticketID,
		global:   ticketID == "",
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
}

func (s *session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// push queues an event item; false when the queue is full (the session then closes 1013).
func (s *session) push(it *item) bool {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return false
	}
	if len(s.queue) >= s.n.cfg.QueueMessages || s.qbytes+len(it.msg) > s.n.cfg.QueueBytes {
		s.overflowLocked()
		s.mu.Unlock()
		s.signal()
		return false
	}
	s.queue = append(s.queue, qent{it: it})
	s.qbytes += len(it.msg)
	s.mu.Unlock()
	s.signal()
	return true
}

// overflowLocked drops the queue at once (its memory is released now, not when the blocked
// writer wakes) and asks the writer to close with 1013.
func (s *session) overflowLocked() {
	s.overflow, s.stopped = true, true
	s.closeCode, s.closeText = CloseTryAgain, "client too slow: resume with your last cursor"
	s.queue, s.qbytes = nil, 0
	s.n.m.slowClients.Inc()
}

// send queues a control or text frame under the same bounds.
func (s *session) send(op byte, payload []byte) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= s.n.cfg.QueueMessages || s.qbytes+len(payload) > s.n.cfg.QueueBytes {
		s.overflowLocked()
		s.mu.Unlock()
		s.signal()
		return
	}
	s.queue = append(s.queue, qent{raw: payload, op: op})
	s.qbytes += len(payload)
	s.mu.Unlock()
	s.signal()
}

// stop ends the session; code 0 closes without a close frame (the peer is gone).
func (s *session) stop(code int, text string) {
	s.mu.Lock()
	if !s.stopped {
		s.stopped, s.closeCode, s.closeText = true, code, text
	}
	s.mu.Unlock()
	s.signal()
}

// --- framing (writer goroutine only) ---

func appendFrame(dst []byte, op byte, payload []byte) []byte {
	n := len(payload)
	switch {
	case n < 126:
		dst = append(dst, 0x80|op, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 0x80|op, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|op, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

// flushThreshold is how much the writer accumulates before a write; at most this much (plus
// one message) is buffered per connection while writing.
const flushThreshold = 64 << 10

var outPool = sync.Pool{New: func() any { b := make([]byte, 0, flushThreshold+4096); return &b }}

func (s *session) frame(op byte, payload []byte) error {
	if s.out == nil {
		s.out = (*outPool.Get().(*[]byte))[:0]
	}
	s.out = appendFrame(s.out, op, payload)
	if len(s.out) >= flushThreshold {
		return s.flush()
	}
	return nil
}

// text frames a JSON message and counts it.
func (s *session) text(typ string, payload []byte) error {
	s.n.m.countSent(typ)
	return s.frame(opText, payload)
}

// event frames an event item: per-ticket sessions share its encoding; /ws/tickets sessions
// advance their merged cursor and append it.
func (s *session) event(it *item) error {
	s.n.m.countSent(it.typ)
	if s.live {
		s.n.m.latency.Observe(time.Since(it.occurredAt).Seconds())
	}
	if !s.global {
		return s.frame(opText, it.message())
	}
	if s.cur == nil {
		s.cur = cursor.Cursor{}
	}
	s.cur[it.partition] = it.offset
	if s.out == nil {
		s.out = (*outPool.Get().(*[]byte))[:0]
	}
	// Frame in place: reserve the longest header, encode, then fix the header.
	start := len(s.out)
	s.out = append(s.out, make([]byte, 10)...)
	s.out = it.messageWith(s.out, s.cur.String())
	payload := s.out[start+10:]
	n := len(payload)
	var hdr []byte
	switch {
	case n < 126:
		hdr = []byte{0x80 | opText, byte(n)}
	case n <= 0xFFFF:
		hdr = []byte{0x80 | opText, 126, byte(n >> 8), byte(n)}
	default:
		hdr = binary.BigEndian.AppendUint64([]byte{0x80 | opText, 127}, uint64(n))
	}
	copy(s.out[start:], hdr)
	copy(s.out[start+len(hdr):], payload)
	s.out = s.out[:start+len(hdr)+n]
	if len(s.out) >= flushThreshold {
		return s.flush()
	}
	return nil
}

func (s *session) flush() error {
	if len(s.out) == 0 {
		return nil
	}
	_ = s.nc.SetWriteDeadline(time.Now().Add(s.n.cfg.WriteTimeout))
	_, err := s.nc.Write(s.out)
	s.out = s.out[:0]
	return err
}

// release returns the write buffer to the pool between bursts: an idle connection holds none.
func (s *session) release() {
	if s.out != nil && cap(s.out) <= 2*flushThreshold {
		b := s.out[:0]
		outPool.Put(&b)
	}
	s.out = nil
}

// writeClose sends a close frame (best effort, short deadline).
func (s *session) writeClose(code int, text string) {
	if s.closed {
		return
	}
	s.closed = true
	if len(text) > 120 {
		text = text[:120]
	}
	payload := binary.BigEndian.AppendUint16(nil, uint16(code))
	payload = append(payload, text...)
	_ = s.frame(opClose, payload)
	_ = s.nc.SetWriteDeadline(time.Now().Add(time.Second))
	if len(s.out) > 0 {
		_, _ = s.nc.Write(s.out)
		s.out = s.out[:0]
	}
	// Give the peer a moment to answer the close; the reader returns on its reply.
	_ = s.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
}

// writeLoop is the connection's only writer. setup writes connected and the replay; then it
// drains live messages until the session stops.
func (s *session) writeLoop(setup func() error) {
	defer close(s.done)
	defer s.release()
	if err := setup(); err != nil {
		s.stop(0, "")
		return
	}
	if err := s.flush(); err != nil {
		s.stop(0, "")
		return
	}
	s.live = true
	ping := time.NewTicker(s.n.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-s.wake:
		case <-ping.C:
			if s.frame(opPing, nil) != nil || s.flush() != nil {
				s.stop(0, "")
				return
			}
			s.release()
			continue
		}
		s.mu.Lock()
		batch := s.queue
		s.queue, s.qbytes = s.spare, 0
		s.spare = nil
		stopped, overflow, code, text := s.stopped, s.overflow, s.closeCode, s.closeText
		s.mu.Unlock()
		if overflow {
			s.writeClose(code, text)
			return
		}
		var err error
		for i := range batch {
			e := &batch[i]
			switch {
			case e.it != nil:
				err = s.event(e.it)
			case e.op == opText:
				err = s.text(TypePong, e.raw)
			default:
				err = s.frame(e.op, e.raw)
			}
			if err != nil {
				break
			}
		}
		if err == nil {
			err = s.flush()
		}
		if err != nil {
			s.stop(0, "")
			return
		}
		if stopped {
			if code != 0 {
				s.writeClose(code, text)
			}
			return
		}
		s.release()
		clear(batch)
		if cap(batch) <= 64 {
			s.mu.Lock()
			if s.queue == nil {
				s.queue = batch[:0]
			} else {
				s.spare = batch[:0]
			}
			s.mu.Unlock()
		}
	}
}
