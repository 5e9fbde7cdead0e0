package app

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/cursor"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/workflow"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	localClaims  = "notifier.claims"
	localAuthErr = "notifier.auth_err"
	localSlot    = "notifier.slot"
	// MaxTicketIDLength bounds ticket ids taken from the path.
	MaxTicketIDLength = 128
)

// writeBufferPool lends gorilla's frame buffer only while it writes (it only writes close
// frames here): an idle connection holds no write buffer.
type writeBufferPool struct{ p sync.Pool }

func (w *writeBufferPool) Get() any  { return w.p.Get() }
func (w *writeBufferPool) Put(v any) { w.p.Put(v) }

// Mount registers GET /ws/tickets (every ticket; admins only) and GET /ws/tickets/:ticket_id.
// Origin and the per-IP connect rate are checked before the upgrade (plain HTTP 403 / 429);
// the token, the ticket and the cursor after it, with an error message and a close code a
// browser can read: 4401 unauthenticated, 4403 forbidden, 4404 unknown ticket, 4400 bad cursor.
func (n *Notifier) Mount(app *fiber.App) {
	wsCfg := websocket.Config{
		HandshakeTimeout: handshakeTimeout,
		ReadBufferSize:   512,
		WriteBufferSize:  512,
		WriteBufferPool:  &writeBufferPool{},
		// permessage-deflate stays off: see the README (gofiber/contrib#1136), and the writer
		// frames messages itself to batch them into one syscall.
		EnableCompression: false,
	}
	app.Get("/ws/tickets", n.precheck, websocket.New(func(c *websocket.Conn) { n.serve(c, "") }, wsCfg))
	app.Get("/ws/tickets/:ticket_id", n.precheck, websocket.New(func(c *websocket.Conn) {
		n.serve(c, c.Params("ticket_id"))
	}, wsCfg))
}

// precheck runs before the upgrade.
func (n *Notifier) precheck(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return httpError(c, httpx.Errorf(fiber.StatusUpgradeRequired, "upgrade_required", "this endpoint speaks WebSocket only"))
	}
	if origin := c.Get(fiber.HeaderOrigin); origin != "" && !n.anyOrig && !n.origins[origin] {
		n.m.rejected.WithLabelValues("origin").Inc()
		return httpError(c, httpx.Forbidden("origin %q is not allowed", origin))
	}
	ip := c.IP() // the socket peer, or the client behind a trusted proxy (httpx.WithTrustedProxies)
	if !n.limiter.allow(ip, time.Now()) {
		n.m.rejected.WithLabelValues("rate_limited").Inc()
		c.Set(fiber.HeaderRetryAfter, "1")
		return httpError(c, httpx.Errorf(fiber.StatusTooManyRequests, "rate_limited", "too many connections from this address; retry later"))
	}
	// Browsers present a single-use ticket (POST /api/ws-tickets); other clients a bearer
	// token, in the Authorization header or (the brief's contract) ?access_token=.
	var (
		claims  *auth.Claims
		authErr error
		used    *auth.WSTicket
	)
	if ticket := c.Query("ticket"); ticket != "" {
		if used, authErr = n.auth.VerifyWSTicket(ticket); authErr == nil {
			claims = used.Claims
		}
	} else {
		token := auth.BearerToken(c.Get(fiber.HeaderAuthorization))
		if token == "" {
			token = c.Query("access_token")
		}
		claims, authErr = n.auth.Verify(token)
	}
	user := ""
	if claims != nil {
		user = claims.Subject()
	}
	slot := n.caps.reserve(user, ip, handshakeTimeout+5*time.Second)
	if slot == nil {
		n.m.rejected.WithLabelValues("too_many_connections").Inc()
		c.Set(fiber.HeaderRetryAfter, "5")
		return httpError(c, httpx.Errorf(fiber.StatusTooManyRequests, "too_many_connections",
			"too many open connections for this user or address; close some first"))
	}
	c.Locals(localSlot, slot)
	// Used only once the connect is otherwise accepted, so a refusal does not burn it.
	if used != nil {
		if err := n.tickets.claim(c.UserContext(), used.ID, used.Expires); err != nil {
			claims, authErr = nil, err
		}
	}
	if claims == nil {
		c.Locals(localAuthErr, authErr)
	} else {
		c.Locals(localClaims, claims)
	}
	return c.Next()
}

// handshakeTimeout bounds the WebSocket upgrade.
const handshakeTimeout = 10 * time.Second

// httpError renders a refusal the way every ticketflow API does, whatever error handler the
// hosting Fiber app has.
func httpError(c *fiber.Ctx, e *httpx.Error) error {
	return c.Status(e.Status).JSON(fiber.Map{"success": false, "error": e})
}

// setupError is a refusal after the upgrade: an error message then a close frame.
type setupError struct {
	code      int
	errCode   string
	message   string
	closeText string
}

func (e *setupError) Error() string { return e.message }

func refuse(code int, errCode, format string, args ...any) *setupError {
	msg := fmt.Sprintf(format, args...)
	return &setupError{code: code, errCode: errCode, message: msg, closeText: errCode}
}

func (n *Notifier) serve(c *websocket.Conn, ticketID string) {
	if slot, _ := c.Locals(localSlot).(*connSlot); slot != nil {
		slot.take()
		defer slot.release()
	}
	s := newSession(n, c, ticketID)
	stream := "ticket"
	if s.global {
		stream = "all"
	}
	n.m.connections.WithLabelValues(stream).Inc()
	defer n.m.connections.WithLabelValues(stream).Dec()
	c.SetReadLimit(n.cfg.MaxFrameBytes)
	_ = c.SetReadDeadline(time.Now().Add(n.cfg.IdleTimeout))
	c.SetPongHandler(func(string) error { return c.SetReadDeadline(time.Now().Add(n.cfg.IdleTimeout)) })
	c.SetPingHandler(func(data string) error {
		_ = c.SetReadDeadline(time.Now().Add(n.cfg.IdleTimeout))
		s.send(opPong, []byte(data))
		return nil
	})

	claims, _ := c.Locals(localClaims).(*auth.Claims)
	authErr, _ := c.Locals(localAuthErr).(error)
	const absent = "\x00"
	cursorParam := c.Query("cursor", absent)
	hasCursor := cursorParam != absent
	if !hasCursor {
		cursorParam = ""
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var setup func() error
	var err error
	if s.global {
		setup, err = n.planAll(ctx, s, claims, authErr, cursorParam, hasCursor)
	} else {
		setup, err = n.planTicket(ctx, s, claims, authErr, cursorParam, hasCursor)
	}
	if err != nil {
		var se *setupError
		if !errors.As(err, &se) {
			n.log.Warn("websocket setup failed", "ticket_id", ticketID, "err", err)
			se = refuse(CloseTryAgain, "unavailable", "the event log is unavailable; retry later")
		}
		n.m.rejected.WithLabelValues(se.errCode).Inc()
		s.closed = false
		_ = s.text(TypeError, mustJSON(errorMsg{Type: TypeError, Code: se.errCode, Message: se.message}))
		s.writeClose(se.code, se.closeText)
		s.release()
		n.drain(c)
		return
	}
	defer n.hub.unsubscribe(s, ticketID)
	s.start(setup)
	// The connection lives no longer than its credential: closed 4401 when the token (or
	// the token a ticket was issued from) expires, with the same leeway a connect gets.
	expiry := time.AfterFunc(time.Until(claims.ExpiresAt.Add(auth.Leeway)), s.expire)
	defer expiry.Stop()

	for {
		typ, data, err := c.ReadMessage()
		if err != nil {
			var ce *fws.CloseError
			switch {
			case errors.As(err, &ce):
				s.stop(0, "") // gorilla has echoed the close
			case errors.Is(err, fws.ErrReadLimit):
				n.m.rejected.WithLabelValues("frame_too_large").Inc()
				s.stop(0, "") // gorilla has sent 1009
			default:
				s.stop(0, "")
			}
			break
		}
		_ = c.SetReadDeadline(time.Now().Add(n.cfg.IdleTimeout))
		switch parseClientMessage(typ, data) {
		case clientPing:
			s.send(opText, pongMsg)
		case clientBinary:
			s.stop(CloseUnsupported, "binary frames are not supported")
		}
	}
	<-s.done
	_ = s.nc.Close()
}

// drain waits briefly for the client's close reply, so the close frame is not lost to a reset.
func (n *Notifier) drain(c *websocket.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			return
		}
	}
}

func authError(claims *auth.Claims, err error) *setupError {
	if claims != nil {
		return nil
	}
	switch {
	case errors.Is(err, auth.ErrExpiredToken):
		return refuse(CloseUnauthorized, "unauthenticated", "the token has expired")
	case errors.Is(err, auth.ErrMissingToken) || err == nil:
		return refuse(CloseUnauthorized, "unauthenticated", "missing credentials (ticket or access_token parameter, or Authorization header)")
	case errors.Is(err, auth.ErrTicketReused):
		return refuse(CloseUnauthorized, "unauthenticated", "this WebSocket ticket was already used; ask for a new one")
	case errors.Is(err, auth.ErrInvalidToken):
		return refuse(CloseUnauthorized, "unauthenticated", "invalid token")
	default:
		// The single-use record could not be made: fail closed, but say it is temporary.
		return refuse(CloseTryAgain, "unavailable", "cannot check the WebSocket ticket now; retry with a new one")
	}
}

func validTicketID(id string) bool {
	if id == "" || len(id) > MaxTicketIDLength || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if r < 0x21 || r == 0x7f {
			return false
		}
	}
	return true
}

// planTicket authorises a /ws/tickets/{id} connection, registers it and returns the writer's
// setup: connected, then the replay fixed at registration, then replay_complete.
func (n *Notifier) planTicket(ctx context.Context, s *session, claims *auth.Claims, authErr error, cursorParam string, hasCursor bool) (func() error, error) {
	if se := authError(claims, authErr); se != nil {
		return nil, se
	}
	id := s.ticketID
	if !validTicketID(id) {
		return nil, refuse(CloseNotFound, "not_found", "unknown ticket")
	}
	var requested cursor.Cursor
	if hasCursor {
		var err error
		if requested, err = cursor.Parse(cursorParam); err != nil {
			return nil, refuse(CloseBadRequest, "invalid_cursor", "invalid cursor: %v", err)
		}
	}
	info := n.hub.lookup(id)
	// Make sure everything appended before this connect has been applied when it matters:
	// an unknown ticket (created a moment ago?), no cursor (is there a newer run?), or a
	// cursor ahead of this replica (the client comes from a faster one).
	switch {
	case !info.known:
		if err := n.catchUp(ctx); err != nil && !errors.Is(err, errCatchingUp) {
			return nil, err
		}
	case !hasCursor:
		if err := n.catchUp(ctx, info.partition); err != nil && !errors.Is(err, errCatchingUp) {
			return nil, err
		}
	default:
		if o, ok := requested[info.partition]; ok && o > n.hub.position(info.partition) {
			if err := n.catchUp(ctx, info.partition); err != nil {
				if errors.Is(err, errCatchingUp) {
					return nil, refuse(CloseTryAgain, "catching_up", "this server is still catching up with the event log; retry")
				}
				return nil, err
			}
		}
	}
	info = n.hub.lookup(id)
	if !info.known || info.owner == "" {
		owner, p, found, err := n.ownerFromDB(ctx, id)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, refuse(CloseNotFound, "not_found", "unknown ticket %q", id)
		}
		if !info.known {
			info.partition = p
		}
		n.hub.learnOwner(id, info.partition, owner)
		info = n.hub.lookup(id)
	}
	if !claims.CanAccess(info.owner) {
		return nil, refuse(CloseForbidden, "forbidden", "you may not see ticket %q", id)
	}

	p := info.partition
	after, beyond := int64(-1), false
	if hasCursor {
		after = ticketAfter(requested, p)
		if after > n.hub.position(p) {
			// Still ahead after catching up: not a position of this log (recreated topic, or
			// a cursor from elsewhere). History cannot be stitched: say so.
			beyond = true
		}
	}
	plan, ok := n.hub.subscribeTicket(s, id, p, after, !hasCursor)
	if !ok {
		return nil, refuse(CloseGoingAway, "going_away", "server shutting down")
	}
	if beyond {
		plan.after, plan.fromRing, plan.fromKafka = plan.stitch, nil, false
	}
	return func() error {
		_ = s.text(TypeConnected, mustJSON(connectedMsg{Type: TypeConnected, TicketID: id, Resumed: hasCursor}))
		if !hasCursor && plan.after >= plan.stitch {
			// No run yet: nothing to replay, but say so, so a client knows that every
			// message from here on is live.
			n.m.replays.WithLabelValues("no_run").Inc()
			return s.text(TypeReplayComplete, mustJSON(replayCompleteMsg{Type: TypeReplayComplete, TicketID: id}))
		}
		result := "recovered"
		if !hasCursor {
			result = "current_run"
		}
		replayed := 0
		gone := beyond
		if !gone {
			var err error
			replayed, err = n.replayTicket(ctx, s, plan)
			if errors.Is(err, errHistoryGone) {
				gone = true
			} else if err != nil {
				return err
			}
		}
		last := plan.last
		if gone {
			result = "unavailable"
			msg := "the history at this cursor is no longer in the event log; here is the current state"
			if beyond {
				msg = "this cursor is not a position of the current event log; here is the current state"
			}
			_ = s.text(TypeHistoryUnavailable, mustJSON(historyUnavailableMsg{Type: TypeHistoryUnavailable,
				TicketID: id, RequestedCursor: cursorParam, Message: msg}))
			if snap := snapshotMessage(id, plan); snap != nil {
				_ = s.text(TypeStatusUpdate, snap)
			}
		}
		n.m.replays.WithLabelValues(result).Inc()
		n.m.replayed.Add(float64(replayed))
		rc := replayCompleteMsg{Type: TypeReplayComplete, TicketID: id, Replayed: replayed}
		switch {
		case last >= 0 && (gone || plan.after < last):
			rc.Cursor = cursor.Single(p, last).String()
		case plan.after >= 0:
			rc.Cursor = cursor.Single(p, plan.after).String()
		}
		return s.text(TypeReplayComplete, mustJSON(rc))
	}, nil
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

// snapshotMessage is the ticket's state at the stitch, sent after history_unavailable.
func snapshotMessage(id string, plan ticketPlan) []byte {
	if plan.last < 0 {
		return nil
	}
	cur := cursor.Single(plan.partition, plan.last).String()
	if plan.state != nil {
		return snapshotOf(plan.state, cur)
	}
	b, _ := encodeWithCursor(statusUpdateMsg{header: header{Type: TypeStatusUpdate, TicketID: id}, Status: workflow.Idle, Snapshot: true}, cur)
	return b
}

// replayTicket writes the plan's history: from memory when it covers the cursor, otherwise
// straight from the ticket's partition in Kafka, filtered by key, up to the stitch.
func (n *Notifier) replayTicket(ctx context.Context, s *session, plan ticketPlan) (int, error) {
	if !plan.fromKafka {
		for _, it := range plan.fromRing {
			if err := s.event(it); err != nil {
				return 0, err
			}
		}
		return len(plan.fromRing), nil
	}
	// Decoding records is most of a long replay's cost: the reader hands chunks of records to
	// one decoder per core, and this goroutine writes the decoded chunks in log order.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type chunk struct {
		recs []*kgo.Record
		out  chan []*item
	}
	work := make(chan chunk, 8)
	order := make(chan chan []*item, 8)
	for range max(runtime.GOMAXPROCS(0), 1) {
		go func() {
			for c := range work {
				items := make([]*item, 0, len(c.recs))
				for _, rec := range c.recs {
					if it, ok := decodeRecord(rec); ok && it.ticketID == s.ticketID {
						items = append(items, it)
					}
				}
				c.out <- items // buffered: never blocks
			}
		}()
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(order)
		defer close(work)
		const chunkSize = 128
		recs := make([]*kgo.Record, 0, chunkSize)
		flush := func() error {
			c := chunk{recs: recs, out: make(chan []*item, 1)}
			select {
			case order <- c.out:
			case <-ctx.Done():
				return ctx.Err()
			}
			work <- c
			recs = make([]*kgo.Record, 0, chunkSize)
			return nil
		}
		err := n.reader.read(ctx, plan.partition, plan.after+1, plan.stitch, func(rec *kgo.Record) error {
			if string(rec.Key) != s.ticketID {
				return nil
			}
			if _, dup := plan.dups[rec.Offset]; dup {
				return nil
			}
			if recs = append(recs, rec); len(recs) == chunkSize {
				return flush()
			}
			return nil
		})
		if err == nil && len(recs) > 0 {
			err = flush()
		}
		readErr <- err
	}()
	replayed := 0
	for out := range order {
		for _, it := range <-out {
			if err := s.event(it); err != nil {
				cancel()
				for range order { // let the reader stop
				}
				return replayed, err
			}
			replayed++
		}
	}
	return replayed, <-readErr
}

// planAll authorises a /ws/tickets connection (admins only), registers it and returns its
// setup. With a cursor, every partition is replayed from Kafka up to the stitch; without, the
// client starts live and connected carries the cursor of the stitch.
func (n *Notifier) planAll(ctx context.Context, s *session, claims *auth.Claims, authErr error, cursorParam string, hasCursor bool) (func() error, error) {
	if se := authError(claims, authErr); se != nil {
		return nil, se
	}
	if !claims.IsAdmin() {
		return nil, refuse(CloseForbidden, "forbidden", "the all-tickets stream is for admins only")
	}
	var requested cursor.Cursor
	if hasCursor {
		var err error
		if requested, err = cursor.Parse(cursorParam); err != nil {
			return nil, refuse(CloseBadRequest, "invalid_cursor", "invalid cursor: %v", err)
		}
		ahead := false
		for p, o := range requested {
			if o > n.hub.position(p) {
				ahead = true
			}
		}
		if ahead {
			if err := n.catchUp(ctx); err != nil {
				if errors.Is(err, errCatchingUp) {
					return nil, refuse(CloseTryAgain, "catching_up", "this server is still catching up with the event log; retry")
				}
				return nil, err
			}
		}
	}
	stitch, dups, ok := n.hub.subscribeAll(s)
	if !ok {
		return nil, refuse(CloseGoingAway, "going_away", "server shutting down")
	}
	return func() error {
		if !hasCursor {
			s.cur = cursor.Cursor(stitch).Clone()
			return s.text(TypeConnected, mustJSON(connectedMsg{Type: TypeConnected, TicketID: "*", Cursor: s.cur.String()}))
		}
		_ = s.text(TypeConnected, mustJSON(connectedMsg{Type: TypeConnected, TicketID: "*", Resumed: true}))
		s.cur = requested.Clone()
		replayed, gone := 0, []string{}
		for p, end := range stitch {
			after, ok := requested[p]
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
			from := after + 1
			replay := func(rec *kgo.Record) error {
				if _, dup := dups[p][rec.Offset]; dup {
					return nil
				}
				it, ok := decodeRecord(rec)
				if !ok {
					return nil
				}
				replayed++
				return s.event(it)
			}
			err := n.reader.read(ctx, p, from, end, replay)
			if errors.Is(err, errHistoryGone) {
				starts, serr := n.reader.starts(ctx)
				if serr != nil {
					return serr
				}
				gone = append(gone, fmt.Sprintf("%d", p))
				err = n.reader.read(ctx, p, starts[p], end, replay)
			}
			if err != nil {
				return err
			}
		}
		result := "recovered"
		if len(gone) > 0 {
			result = "unavailable"
			_ = s.text(TypeHistoryUnavailable, mustJSON(historyUnavailableMsg{Type: TypeHistoryUnavailable, TicketID: "*",
				RequestedCursor: cursorParam,
				Message:         "history is gone on partitions " + strings.Join(gone, ",") + "; they were replayed from the oldest event still in the log"}))
		}
		n.m.replays.WithLabelValues(result).Inc()
		n.m.replayed.Add(float64(replayed))
		return s.text(TypeReplayComplete, mustJSON(replayCompleteMsg{Type: TypeReplayComplete, TicketID: "*",
			Cursor: s.cur.String(), Replayed: replayed}))
	}, nil
}

func decodeRecord(rec *kgo.Record) (*item, bool) {
	ev, err := kafka.Event(rec)
	if err != nil {
		return nil, false
	}
	return newItem(ev)
}

// Client messages.
type clientMessage int

const (
	clientIgnored clientMessage = iota
	clientPing
	clientBinary
)

// parseClientMessage classifies a client frame. The brief's clients send the text "ping";
// {"type":"ping"} is accepted too. Anything else is ignored (binary frames close 1003).
func parseClientMessage(typ int, data []byte) clientMessage {
	if typ == websocket.BinaryMessage {
		return clientBinary
	}
	if typ != websocket.TextMessage {
		return clientIgnored
	}
	s := strings.TrimSpace(string(data))
	if strings.EqualFold(s, "ping") {
		return clientPing
	}
	if len(s) < 64 && strings.HasPrefix(s, "{") {
		compact := strings.NewReplacer(" ", "", "\t", "", "\n", "", "\r", "").Replace(s)
		if compact == `{"type":"ping"}` {
			return clientPing
		}
	}
	return clientIgnored
}
