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
	typ string // opText: the message type, for metrics ("" = pong)
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
	writing   bool // a writer goroutine is running (it exits after writerLinger idle)
	finished  bool // the session's last writer has exited
	pinger    *time.Timer

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
		// Born writing: live pushes that arrive between registration and start() queue up
		// behind the replay instead of starting a writer of their own.
		writing: true,
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
		s.wakeWriterLocked()
		return false
	}
	s.queue = append(s.queue, qent{it: it})
	s.qbytes += len(it.msg)
	s.wakeWriterLocked()
	return true
}

// wakeWriterLocked (called with s.mu held, which it releases) starts a writer if none runs,
// or signals the running one. Idle connections have no writer goroutine: only the reader.
func (s *session) wakeWriterLocked() {
	start := !s.writing && !s.finished
	if start {
		s.writing = true
	}
	s.mu.Unlock()
	if start {
		go s.drain()
		return
	}
	s.signal()
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
		s.wakeWriterLocked()
		return
	}
	s.queue = append(s.queue, qent{raw: payload, op: op})
	s.qbytes += len(payload)
	s.wakeWriterLocked()
}

// expire ends a session whose token has expired: an error message, then close 4401. The
// client must authenticate again (a new token, or a new ticket from a valid one).
func (s *session) expire() {
	msg := mustJSON(errorMsg{Type: TypeError, Code: "token_expired", Message: "the token has expired; reconnect with a valid one"})
	s.mu.Lock()
	if !s.stopped {
		s.queue = append(s.queue, qent{raw: msg, op: opText, typ: TypeError})
		s.qbytes += len(msg)
		s.stopped, s.closeCode, s.closeText = true, CloseUnauthorized, "token_expired"
	}
	s.wakeWriterLocked()
}

// stop ends the session; code 0 closes without a close frame (the peer is gone).
func (s *session) stop(code int, text string) {
	s.mu.Lock()
	if !s.stopped {
		s.stopped, s.closeCode, s.closeText = true, code, text
	}
	s.wakeWriterLocked()
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

// writerLinger is how long a writer goroutine waits for more before exiting: busy
// connections keep theirs, idle ones cost no goroutine.
const writerLinger = time.Second

// start runs the setup (connected, the replay) as the first writer, then arms server pings.
// Live pushes queue up meanwhile and are written after it, in order.
func (s *session) start(setup func() error) {
	go func() {
		err := setup()
		if err == nil {
			err = s.flush()
		}
		s.release()
		if err != nil {
			s.stop(0, "")
		}
		s.live = true
		s.mu.Lock()
		s.pinger = time.AfterFunc(s.n.cfg.PingInterval, s.ping)
		s.mu.Unlock()
		s.drain()
	}()
}

// ping queues a server ping and re-arms itself until the session ends.
func (s *session) ping() {
	s.send(opPing, nil)
	s.mu.Lock()
	if !s.stopped {
		s.pinger.Reset(s.n.cfg.PingInterval)
	}
	s.mu.Unlock()
}

// drain is the connection's only writer while it runs: it writes whatever is queued, many
// frames per syscall, and exits after writerLinger without work. On stop it writes the close
// frame (if any) and ends the session.
func (s *session) drain() {
	linger := time.NewTimer(writerLinger)
	defer linger.Stop()
	for {
		s.mu.Lock()
		if len(s.queue) == 0 && !s.stopped {
			s.mu.Unlock()
			s.release()
			linger.Reset(writerLinger)
			select {
			case <-s.wake:
				continue
			case <-linger.C:
				s.mu.Lock()
				if len(s.queue) == 0 && !s.stopped {
					s.writing = false
					s.mu.Unlock()
					return
				}
				s.mu.Unlock()
				continue
			}
		}
		batch := s.queue
		s.queue, s.qbytes = s.spare, 0
		s.spare = nil
		stopped, overflow, code, text := s.stopped, s.overflow, s.closeCode, s.closeText
		s.mu.Unlock()
		if overflow {
			s.writeClose(code, text)
			s.finish()
			return
		}
		var err error
		for i := range batch {
			e := &batch[i]
			switch {
			case e.it != nil:
				err = s.event(e.it)
			case e.op == opText && e.typ != "":
				err = s.text(e.typ, e.raw)
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
			s.mu.Lock()
			s.stopped = true
			s.mu.Unlock()
			s.finish()
			_ = s.nc.Close() // the peer is gone: unblock the reader
			return
		}
		if stopped {
			if code != 0 {
				s.writeClose(code, text)
			}
			s.finish()
			return
		}
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

// finish marks the session's writing over (no writer will start again) and releases it.
func (s *session) finish() {
	s.release()
	s.mu.Lock()
	s.finished, s.writing = true, false
	s.queue = nil
	if s.pinger != nil {
		s.pinger.Stop()
	}
	s.mu.Unlock()
	close(s.done)
}
