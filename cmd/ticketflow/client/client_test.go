package client

import (
	"testing"
)

func TestAPIErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   string
	}{
		{404, `{"success":false,"error":{"code":"not_found","message":"ticket not found"}}`, "ticket not found (404 not_found)"},
		{409, `{"error":{"code":"run_active","message":"a run is active"}}`, "a run is active (409 run_active)"},
		{502, `bad gateway`, "bad gateway (502)"},
		{503, ``, "Service Unavailable (503)"},
	} {
		if got := decodeError(tc.status, []byte(tc.body)).Error(); got != tc.want {
			t.Errorf("decodeError(%d, %s) = %q, want %q", tc.status, tc.body, got, tc.want)
		}
	}
}

func TestWSURL(t *testing.T) {
	for _, tc := range []struct {
		base, ticket, tk, cur, want string
	}{
		{"http://127.0.0.1:8000", "abc", "T1", "", "ws://127.0.0.1:8000/ws/tickets/abc?ticket=T1"},
		{"https://tf.example.com/", "abc", "T1", "v1.3-42", "wss://tf.example.com/ws/tickets/abc?cursor=v1.3-42&ticket=T1"},
		{"http://h/prefix", "x", "", "", "ws://h/prefix/ws/tickets/x"},
	} {
		got, err := WSURL(tc.base, tc.ticket, tc.tk, tc.cur)
		if err != nil || got != tc.want {
			t.Errorf("WSURL(%q) = %q, %v; want %q", tc.base, got, err, tc.want)
		}
	}
	if _, err := WSURL("ftp://x", "a", "", ""); err == nil {
		t.Error("ftp URL accepted")
	}
}

func TestBackoffIsCapped(t *testing.T) {
	for n := 1; n < 30; n++ {
		d := backoff(n, 100e6, 2e9)
		if d < 80e6 || d > 2.4e9 {
			t.Fatalf("backoff(%d) = %v", n, d)
		}
	}
}
