// Package auth issues and verifies ticketflow's bearer tokens: HS256 JWTs with the claims
// sub (user id), role (admin or user) and exp.
package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Roles.
const (
	RoleAdmin = "admin"
	RoleUser  = "user"
)

// MinSecretLength keeps HS256 keys at least as long as the hash output.
const MinSecretLength = 32

// Claims is what a verified token says about its bearer.
type Claims struct {
	Role string `json:"role"`
	jwt.RegisteredClaims
}

// Subject is the user id.
func (c *Claims) Subject() string { return c.RegisteredClaims.Subject }

// IsAdmin reports whether the bearer may see every ticket.
func (c *Claims) IsAdmin() bool { return c.Role == RoleAdmin }

// CanAccess reports whether the bearer may see a ticket owned by owner.
func (c *Claims) CanAccess(owner string) bool { return c.IsAdmin() || c.Subject() == owner }

// Errors a caller maps to 401.
var (
	ErrMissingToken = errors.New("missing bearer token")
	ErrInvalidToken = errors.New("invalid token")
	ErrExpiredToken = errors.New("token expired")
)

// Verifier checks tokens signed with one secret.
type Verifier struct{ secret []byte }

// NewVerifier refuses secrets too short to be safe.
func NewVerifier(secret string) (*Verifier, error) {
	if len(secret) < MinSecretLength {
		return nil, fmt.Errorf("auth: TICKETFLOW_JWT_SECRET must be at least %d bytes", MinSecretLength)
	}
	return &Verifier{secret: []byte(secret)}, nil
}

// Verify parses and validates a token: HS256 only, exp required, role known, sub present.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, ErrMissingToken
	}
	claims := new(Claims)
	_, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return v.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway))
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, ErrExpiredToken
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if len(claims.Audience) > 0 {
		// Bearer tokens carry no audience; anything with one (a WebSocket ticket signed with
		// the same secret by mistake, a token for another system) is not a bearer token.
		return nil, fmt.Errorf("%w: bearer tokens carry no aud claim", ErrInvalidToken)
	}
	if claims.Subject() == "" {
		return nil, fmt.Errorf("%w: no sub claim", ErrInvalidToken)
	}
	if claims.Role != RoleAdmin && claims.Role != RoleUser {
		return nil, fmt.Errorf("%w: role must be %q or %q", ErrInvalidToken, RoleAdmin, RoleUser)
	}
	return claims, nil
}

// Issue signs a token; used by `ticketflow dev` and `ticketflow token`, and by tests.
func (v *Verifier) Issue(subject, role string, ttl time.Duration) (string, error) {
	now := time.Now()
	claims := Claims{Role: role, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   subject,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(v.secret)
}

// BearerToken extracts the token from an Authorization header value ("Bearer <token>").
func BearerToken(header string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}
