package ports

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/cursor"
	"github.com/ticketflow/ticketflow/services/notifier/app"
)

// MaxTicketIDLength bounds ticket ids taken from the path.
const MaxTicketIDLength = 128

// serve is one upgraded connection: the request checked, the session opened, then the read
// loop until the peer goes or the session ends.
func (s *Server) serve(c *websocket.Conn, ticketID string) {
	if slot, _ := c.Locals(localSlot).(*connSlot); slot != nil {
		slot.take()
		defer slot.release()
	}
	sess := s.app.NewSession(c.NetConn(), ticketID)
	stream := "ticket"
	if sess.Global() {
		stream = "all"
	}
	defer s.m.Connected(stream)()
	c.SetReadLimit(s.cfg.MaxFrameBytes)
	_ = c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
	c.SetPongHandler(func(string) error { return c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout)) })
	c.SetPingHandler(func(data string) error {
		_ = c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		sess.Pong([]byte(data))
		return nil
	})

	req, refusal := request(c, ticketID)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if refusal != nil {
		s.app.Refuse(sess, refusal)
		drain(c)
		return
	}
	if !s.app.Open(ctx, sess, req) {
		drain(c)
		return
	}
	defer s.app.Close(sess)
	// The connection lives no longer than its credential: closed 4401 when the token (or
	// the token a ticket was issued from) expires, with the same leeway a connect gets.
	expiry := time.AfterFunc(time.Until(req.Claims.ExpiresAt.Add(auth.Leeway)), sess.Expire)
	defer expiry.Stop()
	s.readLoop(c, sess)
	<-sess.Done()
	_ = c.NetConn().Close()
}

// readLoop reads client frames until the connection fails or closes.
func (s *Server) readLoop(c *websocket.Conn, sess *app.Session) {
	for {
		typ, data, err := c.ReadMessage()
		if err != nil {
			if errors.Is(err, fws.ErrReadLimit) {
				s.m.Rejected("frame_too_large") // gorilla has sent 1009
			}
			sess.Stop(0, "") // a close was echoed by gorilla, or the peer is gone
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		switch parseClientMessage(typ, data) {
		case clientPing:
			sess.PongText()
		case clientBinary:
			sess.Stop(app.CloseUnsupported, "binary frames are not supported")
		}
	}
}

// drain waits briefly for the client's close reply, so the close frame is not lost to a reset.
func drain(c *websocket.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			return
		}
	}
}

// request reads what the connection asks for, or why it is refused: no valid credential, a
// malformed ticket id, the all-tickets stream for a non-admin, an invalid cursor.
func request(c *websocket.Conn, ticketID string) (app.Request, *app.Refusal) {
	claims, _ := c.Locals(localClaims).(*auth.Claims)
	authErr, _ := c.Locals(localAuthErr).(error)
	if r := authRefusal(claims, authErr); r != nil {
		return app.Request{}, r
	}
	switch {
	case ticketID == "" && !claims.IsAdmin():
		return app.Request{}, app.Refuse(app.CloseForbidden, "forbidden", "the all-tickets stream is for admins only")
	case ticketID != "" && !validTicketID(ticketID):
		return app.Request{}, app.Refuse(app.CloseNotFound, "not_found", "unknown ticket")
	}
	req := app.Request{Claims: claims, TicketID: ticketID}
	const absent = "\x00"
	if raw := c.Query("cursor", absent); raw != absent {
		cur, err := cursor.Parse(raw)
		if err != nil {
			return app.Request{}, app.Refuse(app.CloseBadRequest, "invalid_cursor", "invalid cursor: %v", err)
		}
		req.HasCursor, req.Cursor, req.RawCursor = true, cur, raw
	}
	return req, nil
}

// authRefusal is the refusal of a connect without valid credentials (nil with claims).
func authRefusal(claims *auth.Claims, err error) *app.Refusal {
	if claims != nil {
		return nil
	}
	switch {
	case errors.Is(err, auth.ErrExpiredToken):
		return app.Refuse(app.CloseUnauthorized, "unauthenticated", "the token has expired")
	case errors.Is(err, auth.ErrMissingToken) || err == nil:
		return app.Refuse(app.CloseUnauthorized, "unauthenticated", "missing credentials (ticket or access_token parameter, or Authorization header)")
	case errors.Is(err, auth.ErrTicketReused):
		return app.Refuse(app.CloseUnauthorized, "unauthenticated", "this WebSocket ticket was already used; ask for a new one")
	case errors.Is(err, auth.ErrInvalidToken):
		return app.Refuse(app.CloseUnauthorized, "unauthenticated", "invalid token")
	default:
		// The single-use record could not be made: fail closed, but say it is temporary.
		return app.Refuse(app.CloseTryAgain, "unavailable", "cannot check the WebSocket ticket now; retry with a new one")
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
