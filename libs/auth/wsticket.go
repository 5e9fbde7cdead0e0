package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// A WebSocket ticket lets a browser open a socket without putting its long-lived bearer token
// in a URL (URLs end up in proxy logs and browser history). It is an HS256 token signed with a
// key derived from the JWT secret for this purpose only, with its own audience and header
// type, so a ticket is never accepted as a bearer token and a bearer token never as a ticket.
// It carries the bearer's sub and role, the bearer token's own expiry (the socket it opens is
// closed then) and a random jti the notifier records to make it single-use.

// WSTicketAudience is the aud claim of every WebSocket ticket (bearer tokens carry none).
const WSTicketAudience = "ticketflow:ws-ticket"

// wsTicketType is the JOSE header typ of a ticket.
const wsTicketType = "tf-ws-ticket"

// MaxWSTicketTTL bounds a ticket's lifetime whatever the issuer was configured with, so a
// verifier knows how long a used jti must be remembered: MaxWSTicketTTL plus Leeway.
const MaxWSTicketTTL = 5 * time.Minute

// Leeway is the clock skew tolerated on exp between the issuer and a verifier.
const Leeway = 5 * time.Second

// ticketLeeway is the skew tolerated on a ticket's own (short) expiry.
const ticketLeeway = time.Second

// ErrTicketReused is returned by a ticket store when a jti was presented before.
var ErrTicketReused = errors.New("websocket ticket already used")

// WSTicket is a verified ticket.
type WSTicket struct {
	// Claims are the bearer's: sub, role, and ExpiresAt = the bearer token's exp (the
	// session's end), not the ticket's.
	Claims *Claims
	// ID is the ticket's jti.
	ID string
	// Expires is when the ticket itself stops being accepted (a used jti must be
	// remembered at least until then).
	Expires time.Time
}

type wsTicketClaims struct {
	Role string `json:"role"`
	// SessionExp is the exp of the bearer token the ticket was issued from.
	SessionExp *jwt.NumericDate `json:"sexp"`
	jwt.RegisteredClaims
}

func (v *Verifier) ticketKey() []byte {
	m := hmac.New(sha256.New, v.secret)
	m.Write([]byte("ticketflow websocket ticket key v1"))
	return m.Sum(nil)
}

// IssueWSTicket signs a ticket for the bearer of c, valid for ttl (never past c's exp, never
// longer than MaxWSTicketTTL). It returns the ticket and how long it is valid.
func (v *Verifier) IssueWSTicket(c *Claims, ttl time.Duration) (string, time.Duration, error) {
	return v.issueWSTicket(c, ttl, time.Now())
}

func (v *Verifier) issueWSTicket(c *Claims, ttl time.Duration, now time.Time) (string, time.Duration, error) {
	if c == nil || c.Subject() == "" || c.ExpiresAt == nil {
		return "", 0, errors.New("auth: a WebSocket ticket needs verified claims with sub and exp")
	}
	if ttl <= 0 || ttl > MaxWSTicketTTL {
		return "", 0, fmt.Errorf("auth: WebSocket ticket TTL must be in (0, %s]", MaxWSTicketTTL)
	}
	sessionExp := c.ExpiresAt.Time
	// exp has second precision: round up, so a 30 s ticket is valid for 30 s, not 29.x.
	exp := now.Add(ttl)
	if t := time.Unix(exp.Unix(), 0); t.Before(exp) {
		exp = t.Add(time.Second)
	}
	if sessionExp.Before(exp) {
		exp = sessionExp
	}
	if !exp.After(now) {
		return "", 0, ErrExpiredToken
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", 0, fmt.Errorf("auth: random ticket id: %w", err)
	}
	claims := wsTicketClaims{Role: c.Role, SessionExp: jwt.NewNumericDate(sessionExp), RegisteredClaims: jwt.RegisteredClaims{
		Subject:   c.Subject(),
		Audience:  jwt.ClaimStrings{WSTicketAudience},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
		ID:        hex.EncodeToString(jti),
	}}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["typ"] = wsTicketType
	s, err := tok.SignedString(v.ticketKey())
	if err != nil {
		return "", 0, fmt.Errorf("auth: sign WebSocket ticket: %w", err)
	}
	// NumericDate has second precision: report what the token really allows.
	return s, time.Unix(exp.Unix(), 0).Sub(now).Truncate(time.Second), nil
}

// VerifyWSTicket checks a ticket's signature, type, audience and expiry. It does not check
// single use: the caller records the ID (see ErrTicketReused).
func (v *Verifier) VerifyWSTicket(ticket string) (*WSTicket, error) {
	return v.verifyWSTicket(ticket, time.Now())
}

func (v *Verifier) verifyWSTicket(ticket string, now time.Time) (*WSTicket, error) {
	if ticket == "" {
		return nil, ErrMissingToken
	}
	claims := new(wsTicketClaims)
	tok, err := jwt.ParseWithClaims(ticket, claims, func(*jwt.Token) (any, error) { return v.ticketKey(), nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithAudience(WSTicketAudience),
		jwt.WithLeeway(ticketLeeway),
		jwt.WithTimeFunc(func() time.Time { return now }))
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, fmt.Errorf("%w: the WebSocket ticket has expired", ErrExpiredToken)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if typ, _ := tok.Header["typ"].(string); typ != wsTicketType {
		return nil, fmt.Errorf("%w: not a WebSocket ticket", ErrInvalidToken)
	}
	switch {
	case claims.Subject == "" || claims.ID == "" || claims.IssuedAt == nil || claims.SessionExp == nil:
		return nil, fmt.Errorf("%w: WebSocket ticket without sub, jti, iat or sexp", ErrInvalidToken)
	case claims.Role != RoleAdmin && claims.Role != RoleUser:
		return nil, fmt.Errorf("%w: role must be %q or %q", ErrInvalidToken, RoleAdmin, RoleUser)
	case claims.ExpiresAt.Sub(claims.IssuedAt.Time) > MaxWSTicketTTL:
		return nil, fmt.Errorf("%w: WebSocket ticket valid for longer than %s", ErrInvalidToken, MaxWSTicketTTL)
	case now.After(claims.SessionExp.Add(Leeway)):
		return nil, ErrExpiredToken
	}
	return &WSTicket{
		Claims: &Claims{Role: claims.Role, RegisteredClaims: jwt.RegisteredClaims{
			Subject:   claims.Subject,
			ExpiresAt: claims.SessionExp,
			IssuedAt:  claims.IssuedAt,
		}},
		ID:      claims.ID,
		Expires: claims.ExpiresAt.Time,
	}, nil
}
