package auth

import (
	"errors"
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
