package repoconfig

import (
	"fmt"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
)

// Limits are the operator's bounds (TICKETFLOW_CI_TIMEOUT, TICKETFLOW_AGENT_*): the most a
// repository can get. Zero means unbounded (a repository's value then applies as it is).
type Limits struct {
	CITimeout   time.Duration
	MaxSteps    int
	MaxTokens   int64
	MaxCostUSD  float64
	MaxDuration time.Duration
}

// Ticket is what of the ticket may override the repository's values.
type Ticket struct {
	// CICommand is the ticket's ci_command ("" sets none).
	CICommand string
}

// Where a value of the effective configuration came from.
const (
	FromRepository = "repository"
	FromTicket     = "ticket"
)

// Effective is the configuration a run uses: the operator's limits lowered by the
// repository's, the CI command from the repository or the ticket, the editable globs.
type Effective struct {
	// Source is "file" (the repository has a .ticketflow.yml) or "default".
	Source string `json:"source"`
	// CICommand is what run_ci runs; CICommandFrom says whose it is (repository or ticket).
	CICommand     string        `json:"ci_command"`
	CICommandFrom string        `json:"ci_command_from"`
	CITimeout     time.Duration `json:"ci_timeout"`
	// Editable are the globs of the paths the agent may change; empty: every path.
	Editable    []string      `json:"editable,omitempty"`
	MaxSteps    int           `json:"max_steps"`
	MaxTokens   int64         `json:"max_tokens"`
	MaxCostUSD  float64       `json:"max_cost_usd"`
	MaxDuration time.Duration `json:"max_duration"`
	// CICommandOverridable is the repository's overrides.ci_command.
	CICommandOverridable bool `json:"ci_command_overridable"`
	// Notes say what was refused: a ticket override the repository does not allow, a
	// repository limit above the operator's.
	Notes []string `json:"notes,omitempty"`
}

// Resolve is the effective configuration of a run: cfg is the repository's file (nil: it
// has none), t the ticket's fields, op the operator's limits. The repository's limits only
// lower op's; a ticket field replaces the repository's value only where cfg.Overrides allows.
func Resolve(cfg *Config, t Ticket, op Limits) Effective {
	e := Effective{Source: "default", CICommand: t.CICommand, CICommandFrom: FromTicket, CITimeout: op.CITimeout,
		MaxSteps: op.MaxSteps, MaxTokens: op.MaxTokens, MaxCostUSD: op.MaxCostUSD, MaxDuration: op.MaxDuration}
	if cfg == nil {
		return e
	}
	e.Source = "file"
	e.CICommandOverridable = cfg.Overrides.CICommand
	e.Editable = append([]string(nil), cfg.Agent.Editable...)
	if c := cfg.CI.Command; c != "" {
		switch {
		case t.CICommand == "" || t.CICommand == c:
			e.CICommand, e.CICommandFrom = c, FromRepository
		case cfg.Overrides.CICommand:
			// the ticket's, as allowed
		default:
			e.CICommand, e.CICommandFrom = c, FromRepository
			e.Notes = append(e.Notes, fmt.Sprintf("the ticket's CI command %q is not used: %s does not allow it to override ci.command (overrides.ci_command is false)", clipNote(t.CICommand), FileName))
		}
	}
	e.CITimeout = lower(&e.Notes, "ci.timeout", "TICKETFLOW_CI_TIMEOUT", e.CITimeout, cfg.CI.Timeout)
	e.MaxSteps = lower(&e.Notes, "agent.max_steps", "TICKETFLOW_AGENT_MAX_STEPS", e.MaxSteps, cfg.Agent.MaxSteps)
	e.MaxTokens = lower(&e.Notes, "agent.max_tokens", "TICKETFLOW_AGENT_MAX_TOKENS", e.MaxTokens, cfg.Agent.MaxTokens)
	e.MaxCostUSD = lower(&e.Notes, "agent.max_cost_usd", "TICKETFLOW_AGENT_MAX_COST_USD", e.MaxCostUSD, cfg.Agent.MaxCostUSD)
	e.MaxDuration = lower(&e.Notes, "agent.max_duration", "TICKETFLOW_AGENT_MAX_DURATION", e.MaxDuration, cfg.Agent.MaxDuration)
	return e
}

// lower is the repository's value repo when it is set and does not raise the operator's op
// (0: unbounded); otherwise op, with a note when repo tried to raise it.
func lower[T int | int64 | float64 | time.Duration](notes *[]string, field, env string, op, repo T) T {
	switch {
	case repo == 0:
		return op
	case op == 0 || repo <= op:
		return repo
	}
	*notes = append(*notes, fmt.Sprintf("%s %v is above the operator's %s=%v: %v applies (a repository can only lower limits)", field, repo, env, op, op))
	return op
}

func clipNote(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// CheckEditable refuses a path (relative to the repository root) the agent may not change:
// one no editable glob matches. With editable globs, the configuration file itself is never
// editable (the agent would widen its own bounds for the next run). Without, every path is.
// Confinement to the work tree is gitrepo.SafePath's, not this.
func (e Effective) CheckEditable(p string) error {
	if len(e.Editable) == 0 {
		return nil
	}
	rel := cleanRel(p)
	if rel == FileName {
		return fmt.Errorf("%s is not editable: the agent may not change the repository's configuration", rel)
	}
	for _, g := range e.Editable {
		if ok, err := doublestar.Match(g, rel); err == nil && ok {
			return nil
		}
	}
	return fmt.Errorf("%s is not editable: %s allows the agent to change only %s", rel, FileName, strings.Join(e.Editable, ", "))
}
