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

// NewVerifier refuses secrets too short to be safe, and placeholders: a deployment started
// with a value copied from the repository's compose file, manifests or docs would sign tokens
// anyone can mint.
func NewVerifier(secret string) (*Verifier, error) {
	if len(secret) < MinSecretLength {
		return nil, fmt.Errorf("auth: TICKETFLOW_JWT_SECRET must be at least %d bytes", MinSecretLength)
	}
	if reason := placeholderReason(secret); reason != "" {
		return nil, fmt.Errorf("auth: TICKETFLOW_JWT_SECRET is refused: %s; generate one, e.g. `openssl rand -base64 48`", reason)
	}
	return &Verifier{secret: []byte(secret)}, nil
}

// knownPlaceholders are secrets that appear, or appeared, verbatim in the repository (compose
// defaults, Kubernetes templates, docs): public, so never a key.
var knownPlaceholders = []string{
	"dev-only-insecure-jwt-secret-change-me-0123456789",
	"CHANGE-ME-CHANGE-ME-CHANGE-ME-CHANGE-ME",
	"REFUSED-PLACEHOLDER-create-the-secret-out-of-band",
}

// placeholderWords mark a value someone meant to replace; compared after lower-casing and
// dropping everything but letters and digits, so "Change_Me" and "CHANGE-ME" match alike.
var placeholderWords = []string{"changeme", "placeholder", "example", "insecure", "replaceme", "notasecret", "yoursecret"}

// minDistinctBytes rejects low-entropy values such as one repeated character or "abab...":
// even a hex key (16 symbols) of the minimum length has far more.
const minDistinctBytes = 8

// placeholderReason says why secret looks like a placeholder, or "" when it does not.
func placeholderReason(secret string) string {
	for _, p := range knownPlaceholders {
		if strings.EqualFold(secret, p) {
			return "it is a placeholder published in the ticketflow repository"
		}
	}
	var b strings.Builder
	for _, r := range strings.ToLower(secret) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	normalized := b.String()
	for _, w := range placeholderWords {
		if strings.Contains(normalized, w) {
			return fmt.Sprintf("it contains %q, the mark of a placeholder", w)
		}
	}
	// The word "secret" repeated, or with only separators and digits around it, is no secret.
	if strings.Trim(strings.ReplaceAll(normalized, "secret", ""), "0123456789") == "" {
		return `it is only the word "secret" (with digits or separators)`
	}
	distinct := map[byte]bool{}
	for i := 0; i < len(secret); i++ {
		distinct[secret[i]] = true
	}
	if len(distinct) < minDistinctBytes {
		return fmt.Sprintf("it has only %d distinct characters (a random key of %d bytes has many more)", len(distinct), len(secret))
	}
	return ""
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
