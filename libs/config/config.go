// Package config reads configuration from environment variables into typed structs. Every
// variable has a documented default (the README's configuration table lists the same names).
package config

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/caarlos0/env/v11"
)

// Kafka is the broker connection shared by every service.
type Kafka struct {
	// Brokers are the seed brokers. Empty in `ticketflow dev` means: start the embedded broker.
	Brokers []string `env:"KAFKA_BROKERS" envSeparator:","`
	// Topic is the single event topic; its key is the ticket id.
	Topic string `env:"KAFKA_TOPIC" envDefault:"ticket-events"`
	// Partitions is used when the topic has to be created.
	Partitions int32 `env:"KAFKA_PARTITIONS" envDefault:"12"`
	// ReplicationFactor is used when the topic has to be created (-1 = broker default).
	ReplicationFactor int16 `env:"KAFKA_REPLICATION_FACTOR" envDefault:"-1"`
}

// Postgres is the database connection.
type Postgres struct {
	URL string `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/ticketflow?sslmode=disable"`
	// MaxConns bounds the pool of each service.
	MaxConns int32 `env:"DATABASE_MAX_CONNS" envDefault:"16"`
}

// HTTP is where a service listens.
type HTTP struct {
	Addr string `env:"TICKETFLOW_HTTP_ADDR" envDefault:"127.0.0.1:8000"`
	// AllowedOrigins are the browser origins allowed for CORS and WebSocket upgrades.
	AllowedOrigins []string `env:"TICKETFLOW_ALLOWED_ORIGINS" envSeparator:"," envDefault:"http://localhost:8000,http://127.0.0.1:8000,http://localhost:5173"`
	// TrustedProxies are the reverse proxies (CIDRs) whose X-Forwarded-For is believed.
	// E.g. 10.0.0.0/8,192.0.2.7/32. Empty: none, the client address is the socket peer.
	TrustedProxies []netip.Prefix `env:"TICKETFLOW_TRUSTED_PROXIES" envSeparator:","`
}

// Auth configures bearer tokens.
type Auth struct {
	JWTSecret string `env:"TICKETFLOW_JWT_SECRET"`
}

// Forge configures the pull requests on the repositories' forges (libs/forge): which forge a
// host runs, where its API is, and the token of each repository.
type Forge struct {
	// TICKETFLOW_FORGE_HOSTS: host=kind pairs (github, gitlab, gitea; Forgejo is gitea), e.g.
	// gitlab.example.com=gitlab,git.example.org=gitea; github.com and gitlab.com are known. Default: none.
	Hosts []string `env:"TICKETFLOW_FORGE_HOSTS" envSeparator:","`
	// TICKETFLOW_FORGE_API_URLS: host=API base pairs overriding the derived one (github.com:
	// https://api.github.com, GitHub Enterprise https://host/api/v3, GitLab https://host/api/v4,
	// Gitea https://host/api/v1). Default: derived.
	APIURLs []string `env:"TICKETFLOW_FORGE_API_URLS" envSeparator:","`
	// TICKETFLOW_FORGE_TOKENS: pattern=token pairs, the patterns as in
	// TICKETFLOW_REPOSITORY_ALLOWLIST (github.com/acme/*=ghp_...); the first match wins, else
	// TICKETFLOW_GIT_TOKEN for allow-listed repositories; a repository with no token gets no PR. Default: none.
	Tokens []string `env:"TICKETFLOW_FORGE_TOKENS" envSeparator:","`
	// TICKETFLOW_FORGE_REPOSITORIES: repository=forge repository pairs for repositories cloned from
	// elsewhere than their forge (a mirror, a file:// copy), e.g. file:///srv/git/app.git=https://github.com/acme/app. Default: none.
	Repositories []string `env:"TICKETFLOW_FORGE_REPOSITORIES" envSeparator:","`
	// TICKETFLOW_FORGE_TIMEOUT: bound on one forge API request. Default: 15s.
	Timeout time.Duration `env:"TICKETFLOW_FORGE_TIMEOUT" envDefault:"15s"`
	// TICKETFLOW_PUBLIC_URL: the web app's address as reviewers reach it (links from the PR to the run page). Default: http://localhost:8000.
	PublicURL string `env:"TICKETFLOW_PUBLIC_URL" envDefault:"http://localhost:8000"`
}

// Load parses the environment into a new T.
func Load[T any]() (T, error) {
	var cfg T
	if err := env.Parse(&cfg); err != nil {
		return cfg, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

// Defaults is a T with every envDefault applied and the environment ignored, for tests and
// embedders that want a service's defaults without restating them. A default that does not
// parse is a programming error: Defaults panics.
func Defaults[T any]() T {
	var cfg T
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: map[string]string{}}); err != nil {
		panic(fmt.Sprintf("configuration defaults: %v", err))
	}
	return cfg
}
