package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const secret = "0123456789abcdef0123456789abcdef"

func TestVerify(t *testing.T) {
	v, err := NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := v.Issue("alice", RoleUser, time.Minute)
	expired, _ := v.Issue("alice", RoleUser, -time.Minute)
	badRole, _ := v.Issue("alice", "root", time.Minute)
	other, _ := (&Verifier{secret: []byte("another-secret-another-secret-xx")}).Issue("alice", RoleUser, time.Minute)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "a", "role": "admin", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "a", "role": "admin"}).SignedString([]byte(secret))

	for _, tc := range []struct {
		name  string
		token string
		want  error
	}{
		{"good", good, nil},
		{"missing", "", ErrMissingToken},
		{"expired", expired, ErrExpiredToken},
		{"bad role", badRole, ErrInvalidToken},
		{"wrong secret", other, ErrInvalidToken},
		{"alg none", none, ErrInvalidToken},
		{"no exp", noExp, ErrInvalidToken},
		{"garbage", "a.b.c", ErrInvalidToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(tc.token)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == nil && (c.Subject() != "alice" || c.IsAdmin()) {
				t.Fatalf("claims = %+v", c)
			}
		})
	}
}

func TestShortSecretRefused(t *testing.T) {
	if _, err := NewVerifier("short"); err == nil {
		t.Fatal("short secret accepted")
	}
}

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{"Bearer abc": "abc", "bearer  abc ": "abc", "Basic abc": "", "abc": "", "": ""} {
		if got := BearerToken(in); got != want {
			t.Errorf("BearerToken(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPlaceholderSecretsRefused(t *testing.T) {
	for _, s := range []string{
		"dev-only-insecure-jwt-secret-change-me-0123456789",
		"CHANGE-ME-CHANGE-ME-CHANGE-ME-CHANGE-ME",
		"change-me-change-me-change-me-change-me",
		"REFUSED-PLACEHOLDER-create-the-secret-out-of-band",
		"my_jwt_Change_Me_please_0123456789abcdef",
		"an-example-value-that-is-long-enough-xyz",
		"placeholderplaceholderplaceholder",
		"secretsecretsecretsecretsecretsecret",
		"secret-secret-secret-secret-secret-0001",
		"insecure-but-long-enough-for-the-length-check",
		strings.Repeat("a", 64),
		strings.Repeat("ab", 20),
		"0000000000000000000000000000000000000000",
		"abcdabcdabcdabcdabcdabcdabcdabcd",
	} {
		_, err := NewVerifier(s)
		if err == nil {
			t.Errorf("NewVerifier(%q) accepted a placeholder", s)
			continue
		}
		if !strings.Contains(err.Error(), "TICKETFLOW_JWT_SECRET is refused") {
			t.Errorf("NewVerifier(%q): error %q does not say why", s, err)
		}
	}
}

func TestRealSecretsAccepted(t *testing.T) {
	for _, s := range []string{
		secret,
		"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", // openssl rand -hex 32
		"q3M2x8Jm0kYzVb7T1nRwP4sLc6HdFgA9eUiOoZyXjKl+/w==",                 // openssl rand -base64 36
		"command-test-secret-command-test-secret",
		"notifier-test-secret-0123456789abcdef",
		"e2e-secret-e2e-secret-e2e-secret-0123",
	} {
		if _, err := NewVerifier(s); err != nil {
			t.Errorf("NewVerifier(%q): %v", s, err)
		}
	}
}
