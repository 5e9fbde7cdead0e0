// Package logging configures slog for every ticketflow process.
package logging

import (
	"log/slog"
	"os"
	"strings"
)

// Setup installs a default slog logger. TICKETFLOW_LOG_FORMAT=json gives JSON lines (what
// Kubernetes log collectors want); anything else gives text. TICKETFLOW_LOG_LEVEL=debug|info|warn|error.
func Setup() *slog.Logger {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(os.Getenv("TICKETFLOW_LOG_LEVEL")))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if strings.EqualFold(os.Getenv("TICKETFLOW_LOG_FORMAT"), "json") {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	l := slog.New(h)
	slog.SetDefault(l)
	return l
}
