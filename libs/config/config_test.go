package config

import (
	"testing"
	"time"
)

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

// Defaults applies the tags' defaults and never reads the environment.
func TestDefaultsIgnoreTheEnvironment(t *testing.T) {
	t.Setenv("KAFKA_PARTITIONS", "3")
	t.Setenv("KAFKA_BROKERS", "elsewhere:9092")
	k := Defaults[Kafka]()
	if k.Partitions != 12 || k.Topic != "ticket-events" || k.ReplicationFactor != -1 || len(k.Brokers) != 0 {
		t.Fatalf("Defaults[Kafka] = %+v", k)
	}
	type tuned struct {
		Every time.Duration `env:"X_EVERY" envDefault:"25s"`
		Cap   int64         `env:"X_CAP" envDefault:"67108864"`
	}
	if d := Defaults[tuned](); d.Every != 25*time.Second || d.Cap != 64<<20 {
		t.Fatalf("Defaults[tuned] = %+v", d)
	}
}
