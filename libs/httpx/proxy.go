package httpx

import (
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// Option adjusts NewApp.
type Option func(*fiber.Config, *[]fiber.Handler)

// WithTrustedProxies makes c.IP() the real client address behind these reverse proxies: the
// right-most X-Forwarded-For hop that is not one of them (a client can put anything at the
// left of the header, only the hops our proxies appended are true). From any other peer
// the header is ignored. Nil or empty: c.IP() is the socket peer.
func WithTrustedProxies(trusted []netip.Prefix) Option {
	return func(cfg *fiber.Config, pre *[]fiber.Handler) {
		if len(trusted) == 0 {
			return
		}
		cfg.EnableTrustedProxyCheck = true
		cfg.ProxyHeader = fiber.HeaderXForwardedFor
		// With validation, Fiber falls back to the peer when the header holds no address.
		cfg.EnableIPValidation = true
		for _, p := range trusted {
			cfg.TrustedProxies = append(cfg.TrustedProxies, p.Masked().String())
		}
		*pre = append(*pre, forwardedClient(trusted))
	}
}

// forwardedClient rewrites X-Forwarded-For, for requests from a trusted proxy, to the single
// address Fiber's c.IP() must return: Fiber v2 takes the left-most value, which the client
// chooses.
func forwardedClient(trusted []netip.Prefix) fiber.Handler {
	isTrusted := func(a netip.Addr) bool {
		a = a.Unmap()
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return func(c *fiber.Ctx) error {
		peer, ok := netip.AddrFromSlice(c.Context().RemoteIP())
		if !ok || !isTrusted(peer) {
			return c.Next() // Fiber ignores the header from this peer
		}
		client := ""
		values := c.Request().Header.PeekAll(fiber.HeaderXForwardedFor)
	walk:
		for i := len(values) - 1; i >= 0; i-- {
			hops := strings.Split(string(values[i]), ",")
			for j := len(hops) - 1; j >= 0; j-- {
				a, ok := parseHop(hops[j])
				if !ok {
					break walk // not written by a proxy of ours: keep the last good hop
				}
				client = a.String()
				if !isTrusted(a) {
					break walk
				}
			}
		}
		c.Request().Header.Del(fiber.HeaderXForwardedFor)
		if client != "" {
			c.Request().Header.Set(fiber.HeaderXForwardedFor, client)
		}
		return c.Next()
	}
}

func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}
