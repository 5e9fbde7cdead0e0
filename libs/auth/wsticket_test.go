package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWSTicketRoundTrip(t *testing.T) {
	v, _ := NewVerifier(secret)
	bearer, _ := v.Issue("alice", RoleAdmin, time.Hour)
	c, err := v.Verify(bearer)
	if err != nil {
		t.Fatal(err)
	}
	tk, ttl, err := v.IssueWSTicket(c, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ttl != 30*time.Second {
		t.Fatalf("ttl = %s", ttl)
	}
	got, err := v.VerifyWSTicket(tk)
	if err != nil {
		t.Fatal(err)
	}
	if got.Claims.Subject() != "alice" || !got.Claims.IsAdmin() || len(got.ID) != 32 {
		t.Fatalf("ticket = %+v claims %+v", got, got.Claims)
	}
	if !got.Claims.ExpiresAt.Equal(c.ExpiresAt.Time) {
		t.Fatalf("session exp = %v, want the bearer's %v", got.Claims.ExpiresAt, c.ExpiresAt)
	}
	if d := time.Until(got.Expires); d < 25*time.Second || d > 31*time.Second {
		t.Fatalf("ticket expires in %s", d)
	}
	other, _, _ := v.IssueWSTicket(c, 30*time.Second)
	if o, _ := v.VerifyWSTicket(other); o == nil || o.ID == got.ID {
		t.Fatal("two tickets share a jti")
	}
}

func TestWSTicketAndBearerAreNotInterchangeable(t *testing.T) {
	v, _ := NewVerifier(secret)
	bearer, _ := v.Issue("alice", RoleUser, time.Hour)
	c, _ := v.Verify(bearer)
	tk, _, _ := v.IssueWSTicket(c, 30*time.Second)
	if _, err := v.Verify(tk); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("ticket as bearer: err = %v, want ErrInvalidToken", err)
	}
	if _, err := v.VerifyWSTicket(bearer); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("bearer as ticket: err = %v, want ErrInvalidToken", err)
	}
	// Tampering with the payload breaks the signature.
	parts := strings.Split(tk, ".")
	forged := parts[0] + "." + parts[1] + "x." + parts[2]
	if _, err := v.VerifyWSTicket(forged); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("forged ticket: err = %v", err)
	}
	w, _ := NewVerifier("another-secret-another-secret-xx")
	if _, err := w.VerifyWSTicket(tk); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("other secret: err = %v", err)
	}
}

func TestWSTicketExpiry(t *testing.T) {
	v, _ := NewVerifier(secret)
	bearer, _ := v.Issue("alice", RoleUser, time.Hour)
	c, _ := v.Verify(bearer)
	now := time.Now()
	tk, _, err := v.issueWSTicket(c, 30*time.Second, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.verifyWSTicket(tk, now.Add(29*time.Second)); err != nil {
		t.Fatalf("within its TTL: %v", err)
	}
	if _, err := v.verifyWSTicket(tk, now.Add(33*time.Second)); !errors.Is(err, ErrExpiredToken) {
		t.Fatalf("past its TTL: err = %v, want ErrExpiredToken", err)
	}

	// Never valid past the bearer's own exp.
	short, _ := v.Issue("alice", RoleUser, 3*time.Second)
	sc, _ := v.Verify(short)
	tk, ttl, err := v.issueWSTicket(sc, 30*time.Second, now)
	if err != nil || ttl > 4*time.Second {
		t.Fatalf("ticket from a 3 s token: ttl %s err %v", ttl, err)
	}
	if _, err := v.verifyWSTicket(tk, now.Add(10*time.Second)); !errors.Is(err, ErrExpiredToken) {
		t.Fatalf("past the bearer's exp: err = %v", err)
	}
	for _, ttl := range []time.Duration{0, -time.Second, MaxWSTicketTTL + time.Second} {
		if _, _, err := v.IssueWSTicket(c, ttl); err == nil {
			t.Fatalf("ttl %s accepted", ttl)
		}
	}
}
