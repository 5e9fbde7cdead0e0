package httpx

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
)

// serveIP starts an app answering c.IP() on a real loopback socket (so the peer is 127.0.0.1).
func serveIP(t *testing.T, opts ...Option) string {
	t.Helper()
	app := NewApp(slog.New(slog.NewTextHandler(io.Discard, nil)), nil, opts...)
	app.Get("/ip", func(c *fiber.Ctx) error { return c.SendString(c.IP()) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.ShutdownWithTimeout(time.Second) })
	return "http://" + ln.Addr().String() + "/ip"
}

func getIP(t *testing.T, url string, xff ...string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for _, v := range xff {
		req.Header.Add("X-Forwarded-For", v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

func TestClientIPIgnoresForwardedForFromUntrustedPeer(t *testing.T) {
	for name, opts := range map[string][]Option{
		"no proxies configured":    nil,
		"empty list":               {WithTrustedProxies(nil)},
		"peer not in trusted list": {WithTrustedProxies(prefixes("10.0.0.0/8", "192.0.2.7/32"))},
	} {
		t.Run(name, func(t *testing.T) {
			url := serveIP(t, opts...)
			if got := getIP(t, url, "203.0.113.9"); got != "127.0.0.1" {
				t.Fatalf("forged X-Forwarded-For from an untrusted peer: IP() = %q, want the peer", got)
			}
		})
	}
}

func TestClientIPFromTrustedProxy(t *testing.T) {
	url := serveIP(t, WithTrustedProxies(prefixes("127.0.0.0/8", "10.0.0.0/8")))
	for _, tc := range []struct {
		name string
		xff  []string
		want string
	}{
		{"no header: the proxy itself", nil, "127.0.0.1"},
		{"one hop", []string{"203.0.113.9"}, "203.0.113.9"},
		// nginx appends the address it saw: whatever the client wrote is on the left.
		{"client forged the left part", []string{"198.51.100.1, 203.0.113.9"}, "203.0.113.9"},
		{"chain of trusted proxies", []string{"1.1.1.1, 203.0.113.9, 10.1.2.3, 10.0.0.5"}, "203.0.113.9"},
		{"every hop trusted", []string{"10.0.0.9, 10.0.0.5"}, "10.0.0.9"},
		{"several header lines", []string{"198.51.100.1", "203.0.113.9, 10.0.0.5"}, "203.0.113.9"},
		{"ipv6 and port", []string{"[2001:db8::1]:4711"}, "2001:db8::1"},
		{"garbage right of a trusted hop", []string{"203.0.113.9, not-an-ip, 10.0.0.5"}, "10.0.0.5"},
		{"garbage only", []string{"not-an-ip"}, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := getIP(t, url, tc.xff...); got != tc.want {
				t.Fatalf("X-Forwarded-For %q: IP() = %q, want %q", tc.xff, got, tc.want)
			}
		})
	}
}
