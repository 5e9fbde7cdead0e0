package app

import (
	"errors"
	"time"
)

// Config tunes the notifier. Every field is read from the environment (libs/config.Load) and
// has a default that suits `ticketflow dev` (config.Defaults[Config] gives them all); the
// README's table lists the same names.
type Config struct {
	// QueueMessages bounds a connection's outgoing queue. A client that lets it fill is
	// disconnected with close 1013 (try again later) and resumes with its cursor: the server
	// never buffers without limit for someone who does not read.
	QueueMessages int `env:"TICKETFLOW_WS_QUEUE_MESSAGES" envDefault:"1024"`
	// QueueBytes bounds the same queue by payload size.
	QueueBytes int `env:"TICKETFLOW_WS_QUEUE_BYTES" envDefault:"4194304"`
	// PingInterval is how often the server pings each connection.
	PingInterval time.Duration `env:"TICKETFLOW_WS_PING_INTERVAL" envDefault:"25s"`
	// IdleTimeout closes a connection from which nothing (not even a pong) arrived for this long.
	IdleTimeout time.Duration `env:"TICKETFLOW_WS_IDLE_TIMEOUT" envDefault:"60s"`
	// WriteTimeout drops a connection whose socket accepts no bytes for this long.
	WriteTimeout time.Duration `env:"TICKETFLOW_WS_WRITE_TIMEOUT" envDefault:"10s"`
	// MaxFrameBytes is the largest client frame accepted; larger ones are closed with 1009.
	// Clients only ever send "ping", so this is small on purpose.
	MaxFrameBytes int64 `env:"TICKETFLOW_WS_MAX_FRAME_BYTES" envDefault:"4096"`
	// ConnectRate and ConnectBurst bound new connections per client IP (token bucket), so a
	// reconnect storm from one address cannot flatten the server. 0 disables the limit.
	ConnectRate  float64 `env:"TICKETFLOW_WS_CONNECT_RATE" envDefault:"20"`
	ConnectBurst int     `env:"TICKETFLOW_WS_CONNECT_BURST" envDefault:"60"`
	// HistoryPerTicket is how many recent events of each ticket are kept in memory to serve
	// resumes without touching Kafka. Older cursors are served from Kafka itself.
	HistoryPerTicket int `env:"TICKETFLOW_WS_HISTORY_PER_TICKET" envDefault:"1024"`
	// HistoryBytes bounds the in-memory history of all tickets together; the least recently
	// active tickets lose theirs first (their resumes then read Kafka).
	HistoryBytes int64 `env:"TICKETFLOW_WS_HISTORY_BYTES" envDefault:"67108864"`
	// CatchUpTimeout bounds how long a connect waits for the live consumer to reach the end of
	// the ticket's partition (a ticket created a moment ago, a cursor from a faster replica).
	CatchUpTimeout time.Duration `env:"TICKETFLOW_WS_CATCHUP_TIMEOUT" envDefault:"5s"`
	// MaxConnsPerUser caps one user's open connections on this replica (0 = no cap).
	// Beyond it a connect is refused before the upgrade: 429 too_many_connections.
	MaxConnsPerUser int `env:"TICKETFLOW_WS_MAX_CONNS_PER_USER" envDefault:"64"`
	// MaxConnsPerIP caps one client address's open connections on this replica (0 = no cap).
	MaxConnsPerIP int `env:"TICKETFLOW_WS_MAX_CONNS_PER_IP" envDefault:"256"`
	// DedupeWindow is how many recent event ids per ticket are kept to drop re-appended copies.
	// A copy of an event appended again (an append retried after a crash) is never sent to a
	// client; one further behind its original than this many of the ticket's events is not
	// recognised.
	DedupeWindow int `env:"TICKETFLOW_WS_DEDUPE_WINDOW" envDefault:"4096"`
}

// Validate refuses settings the notifier cannot run with.
func (c Config) Validate() error {
	switch {
	case c.QueueMessages < 1 || c.QueueBytes < 1:
		return errors.New("notifier: queue limits must be positive")
	case c.PingInterval <= 0 || c.IdleTimeout <= c.PingInterval:
		return errors.New("notifier: TICKETFLOW_WS_IDLE_TIMEOUT must exceed TICKETFLOW_WS_PING_INTERVAL")
	case c.WriteTimeout <= 0:
		return errors.New("notifier: TICKETFLOW_WS_WRITE_TIMEOUT must be positive")
	case c.MaxFrameBytes < 16:
		return errors.New("notifier: TICKETFLOW_WS_MAX_FRAME_BYTES must be at least 16")
	case c.HistoryPerTicket < 0 || c.HistoryBytes < 0:
		return errors.New("notifier: history limits must not be negative")
	case c.MaxConnsPerUser < 0 || c.MaxConnsPerIP < 0:
		return errors.New("notifier: connection caps must not be negative (0 disables one)")
	case c.DedupeWindow < 0:
		return errors.New("notifier: TICKETFLOW_WS_DEDUPE_WINDOW must not be negative")
	case c.CatchUpTimeout <= 0:
		return errors.New("notifier: TICKETFLOW_WS_CATCHUP_TIMEOUT must be positive")
	}
	return nil
}
