package app

import (
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/config"
)

// The defaults come from the envDefault tags, and they are a configuration New accepts.
func TestDefaultsFromTags(t *testing.T) {
	cfg := config.Defaults[Config]()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	if cfg.QueueBytes != 4<<20 || cfg.HistoryBytes != 64<<20 || cfg.PingInterval != 25*time.Second || cfg.ConnectRate != 20 {
		t.Fatalf("defaults %+v", cfg)
	}
}
