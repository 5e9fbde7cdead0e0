package config

import "testing"

func TestTrustedProxies(t *testing.T) {
	t.Setenv("TICKETFLOW_TRUSTED_PROXIES", "10.0.0.0/8,192.0.2.7/32,2001:db8::/32")
	cfg, err := Load[HTTP]()
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.TrustedProxies) != 3 || cfg.TrustedProxies[1].String() != "192.0.2.7/32" {
		t.Fatalf("TrustedProxies = %v", cfg.TrustedProxies)
	}
	t.Setenv("TICKETFLOW_TRUSTED_PROXIES", "10.0.0.1")
	if _, err := Load[HTTP](); err == nil {
		t.Fatal("an address without a prefix length was accepted")
	}
	t.Setenv("TICKETFLOW_TRUSTED_PROXIES", "")
	if cfg, err := Load[HTTP](); err != nil || len(cfg.TrustedProxies) != 0 {
		t.Fatalf("empty: %v %v", cfg.TrustedProxies, err)
	}
}
