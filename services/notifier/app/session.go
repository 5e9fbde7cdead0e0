package app

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/ticketflow/ticketflow/libs/cursor"
)

// qent is one queued outgoing message: an event item, a pre-encoded frame payload, or (op
// opFramed) frames already encoded that an inline write could not finish.
type qent struct {
	it  *item
	raw []byte
	op  byte
	typ string // opText: the message type, for metrics ("" = pong)
}

// opFramed marks a qent whose raw bytes are whole frames, written as they are.
const opFramed = 0xFF

// sessionConfig is what a session needs of the configuration.
type sessionConfig struct {
	queueMessages int
	queueBytes    int
	pingInterval  time.Duration
	writeTimeout  time.Duration
}

func (c Config) session() sessionConfig {
	return sessionConfig{queueMessages: c.QueueMessages, queueBytes: c.QueueBytes,
		pingInterval: c.PingInterval, writeTimeout: c.WriteTimeout}
}

// Session is one WebSocket connection. The hub pushes into its bounded queue without ever
// blocking; exactly one writer goroutine drains the queue into the socket. The writer frames
// messages itself and writes every frame queued at that moment with one syscall (one JSON
// message per frame, many frames per write), which is what makes fan-out cheap.
//
// An event for a connection with nothing queued and no write under way is written by the
// hub's goroutine itself (writeInline), without blocking: waking the writer costs a goroutine
// hand-off per connection, which is most of an event's latency at moderate rates. What the
// socket does not take at once goes back to the queue for the writer.
type Session struct {
	cfg      sessionConfig
	m        *Metrics
	nc       net.Conn
	raw      syscall.RawConn // nc's descriptor for non-blocking writes; nil: none (no inline writes)
	ticketID string          // "" for /ws/tickets
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
	busy      bool // the writer goroutine is writing a batch (or the setup runs)
	inline    bool // an inline write holds the connection; it wakes the writer when done
	finished  bool // the session's last writer has exited
	pinger    *time.Timer

	// Writer-owned state.
	cur    cursor.Cursor // /ws/tickets: merged cursor of everything delivered
	out    []byte
	live   bool // past replay: observe delivery latency
	spare  []qent
	closed bool
}

// NewSession is the session of connection nc (upgraded already) for ticketID ("" for every
// ticket). Open starts it.
func (n *Notifier) NewSession(nc net.Conn, ticketID string) *Session {
	return &Session{
		cfg:      n.cfg.session(),
		m:        n.m,
		nc:       nc,
		raw:      rawConn(nc),
		ticketID: ticketID,
		global:   ticketID == "",
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		// Born writing and busy: live pushes that arrive between registration and start()
		// queue up behind the replay instead of starting a writer of their own.
		writing: true,
		busy:    true,
	}
}

// socket is the connection under the wrapper a hijacked fasthttp connection comes in: the
// wrapper's Close does nothing (fasthttp closes the socket once the handler returns).
func socket(nc net.Conn) net.Conn {
	if u, ok := nc.(interface{ UnsafeConn() net.Conn }); ok {
		return u.UnsafeConn()
	}
	return nc
}

// closeSocket closes the connection for real: a peer that is gone without a word (a write
// failed) must not keep the reader waiting for its idle timeout.
func (s *Session) closeSocket() { _ = socket(s.nc).Close() }

// rawConn is nc's descriptor for non-blocking writes; nil when it has none (TLS, in-memory
// pipes).
func rawConn(nc net.Conn) syscall.RawConn {
	sc, ok := socket(nc).(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

func (s *Session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// push queues an event item; false when the queue is full (the session then closes 1013).
// With mayInline, inline is true when the connection was free and the message small: the
// caller then owes writeInline(it), once it holds no lock, and nothing was queued.
func (s *Session) push(it *item, mayInline bool) (ok, inline bool) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return false, false
	}
	if mayInline && s.raw != nil && !s.busy && !s.inline && len(s.queue) == 0 && len(it.msg) <= maxInlineMessage {
		s.inline = true
		s.mu.Unlock()
		return true, true
	}
	if len(s.queue) >= s.cfg.queueMessages || s.qbytes+len(it.msg) > s.cfg.queueBytes {
		s.overflowLocked()
		s.wakeWriterLocked()
		return false, false
	}
	s.queue = append(s.queue, qent{it: it})
	s.qbytes += len(it.msg)
	s.wakeWriterLocked()
	return true, false
}

// maxInlineMessage bounds the messages written inline (larger ones go through the writer).
const maxInlineMessage = 16 << 10

// writeInline writes the event push reserved the connection for, without blocking: the
// socket takes it at once, or the rest goes back to the front of the queue for the writer
// (which then writes it under the write timeout, as any frame). A write error ends the session.
func (s *Session) writeInline(it *item) {
	err := s.event(it)
	var rest []byte
	if err == nil {
		rest, err = s.tryWrite(s.out)
	}
	if len(rest) > 0 {
		rest = append([]byte(nil), rest...)
	}
	s.release()
	s.mu.Lock()
	s.inline = false
	switch {
	case err != nil:
		s.stopped = true
	case len(rest) > 0:
		s.queue = append([]qent{{raw: rest, op: opFramed}}, s.queue...)
		s.qbytes += len(rest)
	case len(s.queue) == 0 && !s.stopped:
		s.mu.Unlock()
		return
	}
	s.wakeWriterLocked()
	if err != nil {
		s.closeSocket() // the peer is gone: unblock the reader
	}
}

// tryWrite writes what the socket takes of b now, without waiting, and returns the rest.
func (s *Session) tryWrite(b []byte) ([]byte, error) {
	var n int
	var werr error
	if err := s.raw.Write(func(fd uintptr) bool {
		n, werr = syscall.Write(int(fd), b)
		return true
	}); err != nil {
		return b, err
	}
	if errors.Is(werr, syscall.EAGAIN) || errors.Is(werr, syscall.EINTR) {
		return b, nil
	}
	if werr != nil {
		return b, werr
	}
	return b[n:], nil
}

// wakeWriterLocked (called with s.mu held, which it releases) starts a writer if none runs,
// or signals the running one. Idle connections have no writer goroutine: only the reader.
func (s *Session) wakeWriterLocked() {
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
func (s *Session) overflowLocked() {
	s.overflow, s.stopped = true, true
	s.closeCode, s.closeText = CloseTryAgain, "client too slow: resume with your last cursor"
	s.queue, s.qbytes = nil, 0
	s.m.slowClients.Inc()
}

// send queues a control or text frame under the same bounds.
func (s *Session) send(op byte, payload []byte) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= s.cfg.queueMessages || s.qbytes+len(payload) > s.cfg.queueBytes {
		s.overflowLocked()
		s.wakeWriterLocked()
		return
	}
	s.queue = append(s.queue, qent{raw: payload, op: op})
	s.qbytes += len(payload)
	s.wakeWriterLocked()
}

// Global reports whether the session streams every ticket (/ws/tickets).
func (s *Session) Global() bool { return s.global }

// Pong answers a client's ping frame.
func (s *Session) Pong(data []byte) { s.send(opPong, data) }

// PongText answers a client's "ping" text message.
func (s *Session) PongText() { s.send(opText, pongMsg) }

// Done is closed once the session's writing is over.
func (s *Session) Done() <-chan struct{} { return s.done }

// Expire ends a session whose token has expired: an error message, then close 4401. The
// client must authenticate again (a new token, or a new ticket from a valid one).
func (s *Session) Expire() {
	msg := mustJSON(errorMsg{Type: TypeError, Code: "token_expired", Message: "the token has expired; reconnect with a valid one"})
	s.mu.Lock()
	if !s.stopped {
		s.queue = append(s.queue, qent{raw: msg, op: opText, typ: TypeError})
		s.qbytes += len(msg)
		s.stopped, s.closeCode, s.closeText = true, CloseUnauthorized, "token_expired"
	}
	s.wakeWriterLocked()
}

// Stop ends the session; code 0 closes without a close frame (the peer is gone).
func (s *Session) Stop(code int, text string) {
	s.mu.Lock()
	if !s.stopped {
		s.stopped, s.closeCode, s.closeText = true, code, text
	}
	s.wakeWriterLocked()
}

// flushThreshold is how much the writer accumulates before a write; at most this much (plus
// one message) is buffered per connection while writing.
const flushThreshold = 64 << 10

var outPool = sync.Pool{New: func() any { b := make([]byte, 0, flushThreshold+4096); return &b }}

// buffer is the write buffer, taken from the pool when the connection holds none.
func (s *Session) buffer() []byte {
	if s.out == nil {
		s.out = (*outPool.Get().(*[]byte))[:0]
	}
	return s.out
}

// flushIfFull writes the buffer once it holds flushThreshold bytes.
func (s *Session) flushIfFull() error {
	if len(s.out) >= flushThreshold {
		return s.flush()
	}
	return nil
}

func (s *Session) frame(op byte, payload []byte) error {
	s.out = appendFrame(s.buffer(), op, payload)
	return s.flushIfFull()
}

// framed appends frames encoded already (an inline write's rest).
func (s *Session) framed(b []byte) error {
	s.out = append(s.buffer(), b...)
	return s.flushIfFull()
}

// text frames a JSON message and counts it.
func (s *Session) text(typ string, payload []byte) error {
	s.m.countSent(typ)
	return s.frame(opText, payload)
}

// event frames an event item: per-ticket sessions share its encoding; /ws/tickets sessions
// advance their merged cursor and append it.
func (s *Session) event(it *item) error {
	s.m.countSent(it.typ)
	if s.live {
		s.m.latency.Observe(time.Since(it.occurredAt).Seconds())
	}
	if !s.global {
		return s.frame(opText, it.message())
	}
	if s.cur == nil {
		s.cur = cursor.Cursor{}
	}
	s.cur[it.partition] = it.offset
	// Frame in place: reserve the longest header, encode, then fix the header.
	start := len(s.buffer())
	s.out = append(s.out, make([]byte, maxHeader)...)
	s.out = it.messageWith(s.out, s.cur.String())
	payload := s.out[start+maxHeader:]
	n := len(payload)
	var hb [maxHeader]byte
	hdr := appendHeader(hb[:0], opText, n)
	copy(s.out[start:], hdr)
	copy(s.out[start+len(hdr):], payload)
	s.out = s.out[:start+len(hdr)+n]
	return s.flushIfFull()
}

func (s *Session) flush() error {
	if len(s.out) == 0 {
		return nil
	}
	_ = s.nc.SetWriteDeadline(time.Now().Add(s.cfg.writeTimeout))
	_, err := s.nc.Write(s.out)
	s.out = s.out[:0]
	// An expired deadline would also fail the next inline write, which never waits.
	_ = s.nc.SetWriteDeadline(time.Time{})
	return err
}

// release returns the write buffer to the pool between bursts: an idle connection holds none.
func (s *Session) release() {
	if s.out != nil && cap(s.out) <= 2*flushThreshold {
		b := s.out[:0]
		outPool.Put(&b)
	}
	s.out = nil
}

// writeClose sends a close frame (best effort). It gets the write timeout like any frame: a
// client dropped as too slow has a full socket, and its close frame (1013: resume with your
// cursor) goes out only once it reads again.
func (s *Session) writeClose(code int, text string) {
	if s.closed {
		return
	}
	s.closed = true
	_ = s.frame(opClose, closePayload(code, text))
	_ = s.nc.SetWriteDeadline(time.Now().Add(s.cfg.writeTimeout))
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
func (s *Session) start(setup func() error) {
	go func() {
		err := setup()
		if err == nil {
			err = s.flush()
		}
		s.release()
		if err != nil {
			s.Stop(0, "")
		}
		s.live = true
		s.mu.Lock()
		s.pinger = time.AfterFunc(s.cfg.pingInterval, s.ping)
		s.mu.Unlock()
		s.drain()
	}()
}

// ping queues a server ping and re-arms itself until the session ends.
func (s *Session) ping() {
	s.send(opPing, nil)
	s.mu.Lock()
	if !s.stopped {
		s.pinger.Reset(s.cfg.pingInterval)
	}
	s.mu.Unlock()
}

// drain is the connection's only writer while it runs: it writes whatever is queued, many
// frames per syscall, and exits after writerLinger without work. On stop it writes the close
// frame (if any) and ends the session.
func (s *Session) drain() {
	linger := time.NewTimer(writerLinger)
	defer linger.Stop()
	for {
		s.mu.Lock()
		if s.inline || (len(s.queue) == 0 && !s.stopped) {
			// Nothing to write, or an inline write holds the connection (it wakes us after).
			// The buffer is released before the connection is: an inline write may take it
			// the moment busy is false.
			if s.busy {
				s.release()
				s.busy = false
			}
			s.mu.Unlock()
			linger.Reset(writerLinger)
			select {
			case <-s.wake:
				continue
			case <-linger.C:
				s.mu.Lock()
				if !s.inline && len(s.queue) == 0 && !s.stopped {
					s.writing = false
					s.mu.Unlock()
					return
				}
				s.mu.Unlock()
				continue
			}
		}
		s.busy = true
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
			case e.op == opFramed:
				err = s.framed(e.raw)
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
			s.closeSocket() // the peer is gone: unblock the reader
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
func (s *Session) finish() {
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
