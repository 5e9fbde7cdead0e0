package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/forge"
	"github.com/ticketflow/ticketflow/libs/repourl"
	"github.com/ticketflow/ticketflow/libs/workflow"
	"github.com/ticketflow/ticketflow/services/processor/agent"
	"github.com/ticketflow/ticketflow/services/processor/ci"
	"github.com/ticketflow/ticketflow/services/processor/gitrepo"
	"github.com/ticketflow/ticketflow/services/processor/llm"
	"github.com/ticketflow/ticketflow/services/processor/redact"
	"github.com/ticketflow/ticketflow/services/processor/repoconfig"
)

// RealConfig configures the real executor (TICKETFLOW_EXECUTOR=real). Every variable, with
// its default:
type RealConfig struct {
	// TICKETFLOW_WORK_DIR: where per-ticket clones live. Default: $TMPDIR/ticketflow-work.
	WorkDir string `env:"TICKETFLOW_WORK_DIR"`
	// Repos is the repository policy (TICKETFLOW_REPOSITORY_ALLOWLIST,
	// TICKETFLOW_ALLOW_PRIVATE_REPOS, TICKETFLOW_REPOSITORY_ALLOWED_NETS,
	// TICKETFLOW_FILE_REPO_ROOT): see repourl.Config. The command service applies the same.
	Repos repourl.Config
	// TICKETFLOW_GIT_TOKEN: https token for clone and push, sent as HTTP Basic
	// x-access-token:<token> to the repositories of TICKETFLOW_REPOSITORY_ALLOWLIST only (none
	// when it is empty). Default: none.
	GitToken string `env:"TICKETFLOW_GIT_TOKEN"`
	// TICKETFLOW_GIT_CA_FILE: PEM bundle git trusts for https (a self-hosted forge's CA).
	// Default: the system's.
	GitCAFile string `env:"TICKETFLOW_GIT_CA_FILE"`
	// TICKETFLOW_GIT_TOKEN_HOSTS was replaced by TICKETFLOW_REPOSITORY_ALLOWLIST: refused at
	// startup when set.
	RemovedGitTokenHosts string `env:"TICKETFLOW_GIT_TOKEN_HOSTS"`
	// Forge is the pull requests' configuration (TICKETFLOW_FORGE_HOSTS, _API_URLS, _TOKENS,
	// _REPOSITORIES, _TIMEOUT, TICKETFLOW_PUBLIC_URL): see config.Forge and pullrequest.go.
	Forge config.Forge
	// TICKETFLOW_LLM_PROVIDER: anthropic, openai or demo. Default: anthropic if
	// ANTHROPIC_API_KEY is set, else openai if OPENAI_API_KEY is set, else demo (offline).
	LLMProvider string `env:"TICKETFLOW_LLM_PROVIDER"`
	// ANTHROPIC_API_KEY: Anthropic key. Default: none.
	AnthropicKey string `env:"ANTHROPIC_API_KEY"`
	// ANTHROPIC_BASE_URL: Messages API base. Default: https://api.anthropic.com.
	AnthropicBaseURL string `env:"ANTHROPIC_BASE_URL"`
	// ANTHROPIC_MODEL: model id. Default: claude-sonnet-4-5.
	AnthropicModel string `env:"ANTHROPIC_MODEL"`
	// OPENAI_API_KEY: key of the OpenAI-compatible endpoint (may stay empty for a local
	// server). Default: none.
	OpenAIKey string `env:"OPENAI_API_KEY"`
	// OPENAI_BASE_URL: any OpenAI-compatible chat-completions base. Default: https://api.openai.com/v1.
	OpenAIBaseURL string `env:"OPENAI_BASE_URL"`
	// OPENAI_MODEL: model name. Default: gpt-4o-mini.
	OpenAIModel string `env:"OPENAI_MODEL"`
	// TICKETFLOW_LLM_TIMEOUT: bound on one LLM HTTP attempt. Default: 120s.
	LLMTimeout time.Duration `env:"TICKETFLOW_LLM_TIMEOUT" envDefault:"120s"`
	// TICKETFLOW_LLM_MAX_ATTEMPTS: tries on 429, 5xx and network errors. Default: 4.
	LLMMaxAttempts int `env:"TICKETFLOW_LLM_MAX_ATTEMPTS" envDefault:"4"`
	// TICKETFLOW_AGENT_MAX_STEPS: model calls of one call_llm step before the run fails. Default: 40.
	AgentMaxSteps int `env:"TICKETFLOW_AGENT_MAX_STEPS" envDefault:"40"`
	// TICKETFLOW_AGENT_MAX_TOKENS: input+output tokens of one run, all iterations, before it fails. Default: 2000000.
	AgentMaxTokens int64 `env:"TICKETFLOW_AGENT_MAX_TOKENS" envDefault:"2000000"`
	// TICKETFLOW_AGENT_MAX_DURATION: wall time of one call_llm step (its CI runs included). Default: 20m.
	AgentMaxDuration time.Duration `env:"TICKETFLOW_AGENT_MAX_DURATION" envDefault:"20m"`
	// TICKETFLOW_AGENT_MAX_COST_USD: LLM cost of one run, all iterations, before it fails (from TICKETFLOW_LLM_PRICES). Default: 5.
	AgentMaxCostUSD float64 `env:"TICKETFLOW_AGENT_MAX_COST_USD" envDefault:"5"`
	// TICKETFLOW_AGENT_MAX_RESPONSE_TOKENS: max_tokens of each model call. Default: 8192.
	AgentMaxResponseTokens int `env:"TICKETFLOW_AGENT_MAX_RESPONSE_TOKENS" envDefault:"8192"`
	// TICKETFLOW_LLM_PRICES: USD per million input:output tokens by model, model=in:out comma-separated; a dated model id uses the longest entry it starts with; an unknown model costs 0 (logged once). Default: the list prices of the default models (agent.DefaultPrices).
	LLMPrices string `env:"TICKETFLOW_LLM_PRICES" envDefault:"claude-sonnet-4-5=3:15,claude-opus-4-1=15:75,claude-haiku-4-5=1:5,gpt-4o-mini=0.15:0.6,gpt-4o=2.5:10,gpt-4.1=2:8,gpt-4.1-mini=0.4:1.6,demo=0:0"`
	// TICKETFLOW_CI_TIMEOUT: bound on one CI execution (the process group is killed). Default: 10m.
	CITimeout time.Duration `env:"TICKETFLOW_CI_TIMEOUT" envDefault:"10m"`
	// TICKETFLOW_CI_SANDBOX: where CI runs: bwrap, kubernetes or none (unconfined, trusted setups only). Default: bwrap, and the processor refuses to start when it does not work.
	CISandbox string `env:"TICKETFLOW_CI_SANDBOX"`
	// TICKETFLOW_CI_SANDBOX_UID: host uid (and gid) of the bwrap sandbox when the processor runs as root. Default: 65534.
	CISandboxUID int `env:"TICKETFLOW_CI_SANDBOX_UID" envDefault:"65534"`
	// TICKETFLOW_CI_MAX_PROCS: processes and threads one CI execution may have at once. Default: 256.
	CIMaxProcs int `env:"TICKETFLOW_CI_MAX_PROCS" envDefault:"256"`
	// TICKETFLOW_CI_MAX_MEMORY: memory of one CI process (address space, e.g. 2GiB, 512MiB). Default: 2GiB.
	CIMaxMemory ByteSize `env:"TICKETFLOW_CI_MAX_MEMORY" envDefault:"2GiB"`
	// TICKETFLOW_CI_MAX_CPU: CPU time one CI process may use. Default: 10m.
	CIMaxCPU time.Duration `env:"TICKETFLOW_CI_MAX_CPU" envDefault:"10m"`
	// TICKETFLOW_CI_NETWORK_REPOS: repositories whose CI may use the network, as host or host/owner patterns (comma-separated; * matches one segment). Default: none.
	CINetworkRepos []string `env:"TICKETFLOW_CI_NETWORK_REPOS" envSeparator:","`
	// TICKETFLOW_CI_MAX_LOG_LINES: CI output lines of one execution that become log events. Default: 10000.
	CIMaxLogLines int64 `env:"TICKETFLOW_CI_MAX_LOG_LINES" envDefault:"10000"`
	// TICKETFLOW_CI_MAX_LOG_BYTES: CI output bytes of one execution that become log events. Default: 5MiB.
	CIMaxLogBytes ByteSize `env:"TICKETFLOW_CI_MAX_LOG_BYTES" envDefault:"5MiB"`
	// TICKETFLOW_CI_ARTIFACT_MAX_BYTES: bound on the full CI output kept as a run artifact. Default: 64MiB.
	CIArtifactMaxBytes ByteSize `env:"TICKETFLOW_CI_ARTIFACT_MAX_BYTES" envDefault:"64MiB"`
}

// Secrets are the configured values that must never reach an event or a log line.
func (c RealConfig) Secrets() []string {
	out := []string{c.AnthropicKey, c.OpenAIKey, c.GitToken}
	for _, kv := range c.Forge.Tokens {
		if _, token, ok := strings.Cut(kv, "="); ok && strings.TrimSpace(token) != "" {
			out = append(out, strings.TrimSpace(token))
		}
	}
	return out
}

// RealDeps are the executor's adapters and what it learns from the shared configuration.
type RealDeps struct {
	// Artifacts stores the run artifacts (the full CI output); nil keeps none.
	Artifacts Artifacts
	// Secrets are configured values of the process beyond the executor's own (JWT secret,
	// database password) that the redactor masks too.
	Secrets []string
	// Sandbox overrides TICKETFLOW_CI_SANDBOX (tests).
	Sandbox ci.Sandbox
	// Registry gets the LLM cost metrics (ticketflow_llm_*); nil registers none.
	Registry prometheus.Registerer
}

// Real does the work: git clone/fetch, an LLM change applied as file edits, a commit
// pushed on ticketflow/<ticket>/<iteration>, and the ticket's CI command. Every step is safe
// to repeat: the work directory is reset to the run's last pushed commit (or its base) before
// it is changed, and the LLM's change is kept in the run state until it is committed.
type Real struct {
	cfg       RealConfig
	git       *gitrepo.Git
	llm       llm.ToolProvider
	prices    *agent.Prices
	metrics   *llmMetrics
	red       *redact.Redactor
	log       *slog.Logger
	sandbox   ci.Sandbox
	artifacts Artifacts
	// forges finds a repository's forge for its pull request (pullrequest.go).
	forges *forge.Resolver
}

// NewReal builds the executor, chooses the LLM provider and the CI sandbox (which
// must work: see TICKETFLOW_CI_SANDBOX).
func NewReal(cfg RealConfig, log *slog.Logger, deps RealDeps) (*Real, error) {
	if cfg.WorkDir == "" {
		cfg.WorkDir = filepath.Join(os.TempDir(), "ticketflow-work")
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("TICKETFLOW_WORK_DIR: %w", err)
	}
	if err := cfg.validateCI(); err != nil {
		return nil, err
	}
	red := redact.New(append(cfg.Secrets(), deps.Secrets...)...)
	hc := llm.HTTPConfig{Timeout: cfg.LLMTimeout, MaxAttempts: cfg.LLMMaxAttempts, Redactor: red}
	provider := cfg.LLMProvider
	if provider == "" {
		switch {
		case cfg.AnthropicKey != "":
			provider = "anthropic"
		case cfg.OpenAIKey != "":
			provider = "openai"
		default:
			provider = "demo"
		}
	}
	var p llm.ToolProvider
	switch provider {
	case "anthropic":
		if cfg.AnthropicKey == "" {
			return nil, errors.New("TICKETFLOW_LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY")
		}
		p = llm.NewAnthropic(cfg.AnthropicKey, cfg.AnthropicBaseURL, cfg.AnthropicModel, hc)
	case "openai":
		if cfg.OpenAIKey == "" && cfg.OpenAIBaseURL == "" {
			return nil, errors.New("TICKETFLOW_LLM_PROVIDER=openai needs OPENAI_API_KEY or OPENAI_BASE_URL (a local server)")
		}
		p = llm.NewOpenAI(cfg.OpenAIKey, cfg.OpenAIBaseURL, cfg.OpenAIModel, hc)
	case "demo":
		p = llm.Demo{}
	default:
		return nil, fmt.Errorf("TICKETFLOW_LLM_PROVIDER=%q: no such provider (anthropic, openai, demo)", provider)
	}
	if err := cfg.agentDefaults(); err != nil {
		return nil, err
	}
	prices, err := agent.ParsePrices(cfg.LLMPrices, log)
	if err != nil {
		return nil, err
	}
	if cfg.RemovedGitTokenHosts != "" {
		return nil, errors.New("TICKETFLOW_GIT_TOKEN_HOSTS was replaced by TICKETFLOW_REPOSITORY_ALLOWLIST (host/owner patterns, e.g. github.com/acme/*)")
	}
	policy, err := repourl.New(cfg.Repos, nil)
	if err != nil {
		return nil, err
	}
	if err := policy.Forbid(cfg.WorkDir); err != nil {
		return nil, fmt.Errorf("TICKETFLOW_WORK_DIR: %w", err)
	}
	if cfg.GitToken != "" && !policy.HasAllowlist() {
		log.Warn("TICKETFLOW_GIT_TOKEN is set but TICKETFLOW_REPOSITORY_ALLOWLIST is empty: the token is sent to no repository")
	}
	sandbox := deps.Sandbox
	if sandbox == nil {
		sandbox, err = ci.Select(context.Background(), cfg.CISandbox, ci.Options{
			Defaults: cfg.ciLimits(), WorkRoot: cfg.WorkDir, HostUID: cfg.CISandboxUID,
		})
		if err != nil {
			return nil, err
		}
	}
	if sandbox.Name() == "none" {
		log.Warn("CI runs unconfined (TICKETFLOW_CI_SANDBOX=none): a ticket's CI command can read this process's secrets and reach the network; use it for trusted repositories only")
	}
	forges, err := forge.NewResolver(cfg.Forge, cfg.GitToken, policy)
	if err != nil {
		return nil, err
	}
	g := gitrepo.New(gitrepo.Config{Policy: policy, Token: cfg.GitToken, CAFile: cfg.GitCAFile, Redactor: red, Log: log})
	log.Info("real executor", "llm", p.Name(), "work_dir", cfg.WorkDir, "file_repo_root", policy.FileRoot(),
		"repository_allowlist", cfg.Repos.Allowlist, "private_repos", cfg.Repos.AllowPrivate, "git_token", cfg.GitToken != "", "ci_sandbox", sandbox.Name())
	return &Real{cfg: cfg, git: g, llm: p, prices: prices, metrics: newLLMMetrics(deps.Registry), red: red, log: log, sandbox: sandbox,
		artifacts: deps.Artifacts, forges: forges}, nil
}

func (x *Real) Name() string { return "real" }

// realState is the executor's part of the run state (RunState.Extra).
type realState struct {
	// BaseRef and BaseCommit are where the run started: the ticket's base branch, or the
	// latest run branch of an earlier run when a reviewer asked for changes.
	BaseRef    string `json:"base_ref"`
	BaseCommit string `json:"base_commit"`
	// Pending is the LLM's change of the current iteration, until it is committed.
	Pending *llm.Change `json:"pending,omitempty"`
	// Turns are the earlier iterations of this run: what the LLM did and what CI said.
	Turns []turn `json:"turns,omitempty"`
	// Config is the run's effective configuration (the repository's .ticketflow.yml and the
	// ticket's fields within the operator's limits), read at prepare_repository; nil in the
	// state of a run prepared before it existed (runConfig then resolves the defaults).
	Config *repoconfig.Effective `json:"config,omitempty"`
	// PR is the run's pull request on the forge, once it has one.
	PR *prState `json:"pr,omitempty"`
}

type turn struct {
	Iteration int        `json:"iteration"`
	Summary   string     `json:"summary"`
	CI        *CIOutcome `json:"ci,omitempty"`
	// Tools is the agent's tool calls of the iteration, compact (for the next conversation).
	Tools []agent.Entry `json:"tools,omitempty"`
}

// unmarshalState reads an earlier run's executor state; false when it has none.
func unmarshalState(st RunState, s *realState) bool {
	return len(st.Extra) > 0 && json.Unmarshal(st.Extra, s) == nil
}

func loadState(run *Run) (realState, error) {
	var s realState
	if len(run.State.Extra) > 0 {
		if err := json.Unmarshal(run.State.Extra, &s); err != nil {
			return s, fmt.Errorf("run state: %w", err)
		}
	}
	return s, nil
}

func saveState(run *Run, s realState) error {
	b, err := json.Marshal(s)
	run.State.Extra = b
	return err
}

func (s *realState) turn(iteration int) *turn {
	for i := range s.Turns {
		if s.Turns[i].Iteration == iteration {
			return &s.Turns[i]
		}
	}
	s.Turns = append(s.Turns, turn{Iteration: iteration})
	return &s.Turns[len(s.Turns)-1]
}

var unsafeIDChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

func (x *Real) workDir(ticketID string) string {
	id := unsafeIDChars.ReplaceAllString(ticketID, "_")
	if id == "" || strings.HasPrefix(id, ".") {
		id = "t" + id
	}
	return filepath.Join(x.cfg.WorkDir, id)
}

// ciPIDFile records the running CI process group of a work dir (inside .git: outside the
// tree, untouched by git clean).
func ciPIDFile(dir string) string { return filepath.Join(dir, ".git", "ticketflow-ci.pid") }

// killStaleCI stops a CI process group left running by a processor killed during run_ci,
// before the work dir is used again.
func (x *Real) killStaleCI(ctx context.Context, run *Run, dir string) error {
	killed, err := ci.KillStale(ciPIDFile(dir), dir)
	if err != nil {
		return fmt.Errorf("stop the CI left by an earlier attempt: %w", err)
	}
	// A sandbox interrupted with the processor may still own the work tree.
	if err := ci.Reclaim(dir); err != nil {
		return fmt.Errorf("take the work tree back from an interrupted CI: %w", err)
	}
	if !killed {
		return nil
	}
	if run.Step == "" { // Resume: appends no events
		x.log.Warn("stopped the CI process group of an interrupted attempt", "run_id", run.ID)
		return nil
	}
	return x.logf(ctx, run, "WARNING", workflow.LogStaleCIStopped)
}

// gitFailure tells the run's log what failed, in words that do not tell a closed port from a
// missing repository (git's own output went to the server log); the error is the run's.
func (x *Real) gitFailure(ctx context.Context, run *Run, err error) error {
	var msg string
	switch {
	case errors.Is(err, gitrepo.ErrUnreachable):
		msg = workflow.LogRepoUnreachable
	case errors.Is(err, gitrepo.ErrPushRefused):
		msg = workflow.LogPushRefused
	case errors.Is(err, gitrepo.ErrTampered):
		msg = workflow.LogGitTampered
	}
	if msg != "" {
		if lerr := x.logf(ctx, run, "ERROR", "%s", msg); lerr != nil {
			return lerr
		}
	}
	return x.red.Error(err)
}

func (x *Real) logf(ctx context.Context, run *Run, level, format string, args ...any) error {
	return run.Log(ctx, level, x.red.String(fmt.Sprintf(format, args...)))
}

func baseBranch(t Ticket) string {
	if t.BaseBranch == "" {
		return "main"
	}
	return t.BaseBranch
}

func runBranchPrefix(ticketID string) string { return "ticketflow/" + ticketID }

// PrepareRepository clones or fetches the repository into the ticket's work dir at its base
// branch; after a review asking for changes, the run continues from the previous run's branch.
func (x *Real) PrepareRepository(ctx context.Context, run *Run) error {
	t := run.Ticket
	if err := x.git.Check(ctx, t.RepositoryURL); err != nil {
		return x.red.Error(err)
	}
	dir := x.workDir(t.ID)
	branch := baseBranch(t)
	if err := x.killStaleCI(ctx, run, dir); err != nil {
		return err
	}
	if err := x.logf(ctx, run, "INFO", workflow.LogCloning, t.RepositoryURL, branch); err != nil {
		return err
	}
	commit, err := x.git.Sync(ctx, t.RepositoryURL, branch, dir)
	if err != nil {
		return x.gitFailure(ctx, run, err)
	}
	ref := branch
	if len(t.Feedback) > 0 {
		ns, err := x.git.RunBranches(ctx, dir, runBranchPrefix(t.ID))
		if err != nil {
			return x.red.Error(err)
		}
		for _, n := range ns {
			if n < run.Iteration {
				prev := fmt.Sprintf("%s/%d", runBranchPrefix(t.ID), n)
				if commit, err = x.git.FetchBranch(ctx, dir, prev); err != nil {
					return x.red.Error(err)
				}
				if err := x.git.ResetTo(ctx, dir, commit); err != nil {
					return x.red.Error(err)
				}
				ref = prev
				if err := x.logf(ctx, run, "INFO", workflow.LogResumeFromBranch, prev); err != nil {
					return err
				}
				break
			}
		}
	}
	files, err := x.git.Files(ctx, dir)
	if err != nil {
		return x.red.Error(err)
	}
	eff, err := x.loadRepoConfig(ctx, run, dir)
	if err != nil {
		return err
	}
	run.State.WorkDir, run.State.Commit, run.State.Branch = dir, "", ""
	if err := saveState(run, realState{BaseRef: ref, BaseCommit: commit, Config: &eff}); err != nil {
		return err
	}
	return x.logf(ctx, run, "INFO", workflow.LogRepositoryReady, ref, short(commit), len(files))
}

// operatorLimits are the bounds of TICKETFLOW_CI_TIMEOUT and TICKETFLOW_AGENT_*: the most a
// repository's configuration can get.
func (x *Real) operatorLimits() repoconfig.Limits {
	return repoconfig.Limits{CITimeout: x.cfg.CITimeout, MaxSteps: x.cfg.AgentMaxSteps, MaxTokens: x.cfg.AgentMaxTokens,
		MaxCostUSD: x.cfg.AgentMaxCostUSD, MaxDuration: x.cfg.AgentMaxDuration}
}

// loadRepoConfig reads the work tree's .ticketflow.yml (at the run's base), resolves the run's
// configuration with the ticket's fields and the operator's limits, logs it and appends
// RepositoryConfigLoaded. An invalid file fails the step (and so the run) with its error.
func (x *Real) loadRepoConfig(ctx context.Context, run *Run, dir string) (repoconfig.Effective, error) {
	l, err := repoconfig.Load(dir)
	if err != nil {
		msg := x.red.String(err.Error())
		if lerr := x.logf(ctx, run, "ERROR", workflow.LogRepoConfigInvalid, msg); lerr != nil {
			return repoconfig.Effective{}, lerr
		}
		return repoconfig.Effective{}, fmt.Errorf("invalid repository configuration: %s", msg)
	}
	eff := repoconfig.Resolve(l.Config, repoconfig.Ticket{CICommand: run.Ticket.CICommand}, x.operatorLimits())
	if l.Source == "file" {
		err = x.logf(ctx, run, "INFO", workflow.LogRepoConfigFile, repoconfig.FileName, l.Size, short(l.SHA256),
			eff.CICommand, eff.CICommandFrom, strings.Join(eff.Editable, ", "))
	} else {
		err = x.logf(ctx, run, "INFO", workflow.LogRepoConfigDefault, repoconfig.FileName)
	}
	if err != nil {
		return eff, err
	}
	for _, n := range eff.Notes {
		if err := x.logf(ctx, run, "WARNING", workflow.LogRepoConfigNote, n); err != nil {
			return eff, err
		}
	}
	red := x.red.String
	notes := make([]string, len(eff.Notes))
	for i, n := range eff.Notes {
		notes[i] = red(n)
	}
	return eff, run.Emit(ctx, &events.RepositoryConfigLoadedData{Source: l.Source, SHA256: l.SHA256, SizeBytes: l.Size,
		Config: events.RepositoryConfig{CICommand: red(eff.CICommand), CICommandFrom: eff.CICommandFrom, CICommandOverridable: eff.CICommandOverridable,
			CITimeoutMS: eff.CITimeout.Milliseconds(), Editable: eff.Editable, MaxSteps: eff.MaxSteps, MaxTokens: eff.MaxTokens,
			MaxCostUSD: eff.MaxCostUSD, MaxDurationMS: eff.MaxDuration.Milliseconds(), Notes: notes}})
}

// runConfig is the run's effective configuration: the one prepare_repository recorded, or
// (a run prepared before configurations existed) the ticket's command and the operator's limits.
func (x *Real) runConfig(run *Run, s realState) repoconfig.Effective {
	if s.Config != nil {
		return *s.Config
	}
	return repoconfig.Resolve(nil, repoconfig.Ticket{CICommand: run.Ticket.CICommand}, x.operatorLimits())
}

// Resume re-establishes the work dir of a run interrupted after prepare_repository: cloned
// again if it is gone, then reset to the run's last pushed commit (or its base).
func (x *Real) Resume(ctx context.Context, run *Run) error {
	s, err := loadState(run)
	if err != nil {
		return err
	}
	t := run.Ticket
	dir := x.workDir(t.ID)
	run.State.WorkDir = dir
	if err := x.killStaleCI(ctx, run, dir); err != nil {
		return err
	}
	if _, err := x.git.Sync(ctx, t.RepositoryURL, baseBranch(t), dir); err != nil {
		return x.red.Error(err)
	}
	ref, commit := s.BaseRef, s.BaseCommit
	if run.State.Commit != "" {
		ref, commit = run.State.Branch, run.State.Commit
	}
	if ref != "" && ref != baseBranch(t) {
		if _, err := x.git.FetchBranch(ctx, dir, ref); err != nil {
			return x.red.Error(err)
		}
	}
	if commit == "" {
		return nil // interrupted before prepare_repository recorded anything
	}
	return x.red.Error(x.git.ResetTo(ctx, dir, commit))
}

// parent is the commit the current iteration's change applies to.
func parent(run *Run, s realState) string {
	if run.State.Commit != "" {
		return run.State.Commit
	}
	return s.BaseCommit
}

// LoadConversation reports what the LLM will be told; the conversation itself is rebuilt
// from the ticket and the run state whenever it is needed, so it survives restarts.
func (x *Real) LoadConversation(ctx context.Context, run *Run) error {
	s, err := loadState(run)
	if err != nil {
		return err
	}
	// The agent's first message: built here too so a repository the task cannot be made
	// from fails this step rather than call_llm.
	if _, err := x.agentTask(ctx, run, s); err != nil {
		return err
	}
	failures := 0
	for _, t := range s.Turns {
		if t.CI != nil && !t.CI.Passed {
			failures++
		}
	}
	return x.logf(ctx, run, "INFO", workflow.LogConversationLoaded,
		1, len(run.Ticket.Feedback), failures)
}

// promptCITail bounds the CI output of an earlier iteration put in the agent's task (the
// agent reads more with run_ci).
const promptCITail = 6 << 10

// earlierTurns summarises the LLM turns of the ticket's earlier runs and how CI answered.
func earlierTurns(runs []RunState) string {
	var b strings.Builder
	for i, st := range runs {
		var s realState
		if len(st.Extra) == 0 || json.Unmarshal(st.Extra, &s) != nil {
			continue
		}
		for _, tr := range s.Turns {
			verdict := "CI not run"
			if tr.CI != nil && tr.CI.Passed {
				verdict = "CI passed"
			} else if tr.CI != nil {
				verdict = fmt.Sprintf("CI failed (exit code %d)", tr.CI.ExitCode)
			}
			fmt.Fprintf(&b, "- run %d, iteration %d: %s — %s\n", i+1, tr.Iteration, tr.Summary, verdict)
		}
	}
	return b.String()
}

func applyChange(dir string, c llm.Change) error {
	for _, e := range c.Edits {
		var err error
		if e.Delete {
			err = gitrepo.RemoveFile(dir, e.Path)
		} else {
			err = gitrepo.WriteFile(dir, e.Path, *e.Content)
		}
		if err != nil {
			return fmt.Errorf("apply the LLM's change: %w", err)
		}
	}
	return nil
}

// CommitChanges commits the pending change on ticketflow/<ticket>/<iteration> and pushes it.
// It starts from the parent commit and re-applies the change, so a retry after a crash (or
// a work dir rebuilt elsewhere) produces the same tree.
func (x *Real) CommitChanges(ctx context.Context, run *Run) error {
	s, err := loadState(run)
	if err != nil {
		return err
	}
	if s.Pending == nil {
		return errors.New("no LLM change to commit (call_llm did not record one)")
	}
	dir := x.workDir(run.Ticket.ID)
	if err := x.git.ResetTo(ctx, dir, parent(run, s)); err != nil {
		return x.red.Error(err)
	}
	if err := applyChange(dir, *s.Pending); err != nil {
		return x.red.Error(err)
	}
	branch := fmt.Sprintf("%s/%d", runBranchPrefix(run.Ticket.ID), run.Iteration)
	msg := fmt.Sprintf("ticketflow: %s\n\n%s\n\nTicket: %s\nIteration: %d\nRun: %s", run.Ticket.Title, s.Pending.Summary, run.Ticket.ID, run.Iteration, run.ID)
	commit, err := x.git.Commit(ctx, dir, branch, msg)
	if err != nil {
		return x.red.Error(err)
	}
	if err := x.git.Push(ctx, dir, branch); err != nil {
		return x.gitFailure(ctx, run, err)
	}
	s.turn(run.Iteration).Summary = s.Pending.Summary
	s.Pending = nil
	run.State.Branch, run.State.Commit = branch, commit
	if err := saveState(run, s); err != nil {
		return err
	}
	if err := x.logf(ctx, run, "INFO", workflow.LogCommitPushed, short(commit), branch); err != nil {
		return err
	}
	return x.pullRequest(ctx, run, &s, commit)
}

// runCI runs the run's CI command (eff: the repository's or the ticket's) on dir in the
// sandbox, inside a "ci run" span, its lines streamed (redacted, within capture's caps) to the
// run's log. Errors are redacted.
func (x *Real) runCI(ctx context.Context, run *Run, eff repoconfig.Effective, dir string, capture *ciCapture) (ci.Result, error) {
	ciCtx, span := ciSpan(ctx, eff.CICommand, x.sandbox.Name())
	res, err := x.sandbox.Run(ciCtx, ci.Spec{
		Dir: dir, Command: eff.CICommand, Timeout: eff.CITimeout, PIDFile: ciPIDFile(dir),
		Env:     ci.MinimalEnv("TICKETFLOW_TICKET_ID="+run.Ticket.ID, fmt.Sprintf("TICKETFLOW_ITERATION=%d", run.Iteration)),
		Network: networkAllowed(run.Ticket.RepositoryURL, x.cfg.CINetworkRepos),
		Limits:  x.cfg.ciLimits(),
	}, func(lines []ci.Line) error {
		out := make([]OutputLine, len(lines))
		for i, l := range lines {
			out[i] = OutputLine{Stream: l.Stream, Text: x.red.String(l.Text)}
		}
		if emit := capture.add(out); len(emit) > 0 {
			return run.OutputLines(ctx, emit)
		}
		return nil
	})
	err = x.red.Error(err)
	endCISpan(span, res, capture.linesTotal, capture.bytesTotal, err)
	return res, err
}

// RunCI runs the run's CI command (see runConfig) in the configured sandbox and streams its lines: at
// most TICKETFLOW_CI_MAX_LOG_LINES / _BYTES of them become events; the full redacted output
// is kept as the run artifact ci-<iteration>.log.
func (x *Real) RunCI(ctx context.Context, run *Run) (CIOutcome, error) {
	s, err := loadState(run)
	if err != nil {
		return CIOutcome{}, err
	}
	dir := x.workDir(run.Ticket.ID)
	if err := x.killStaleCI(ctx, run, dir); err != nil {
		return CIOutcome{}, err
	}
	network := networkAllowed(run.Ticket.RepositoryURL, x.cfg.CINetworkRepos)
	switch {
	case x.sandbox.Name() == "none":
		err = x.logf(ctx, run, "WARNING", workflow.LogCIUnsandboxed)
	case network:
		err = x.logf(ctx, run, "INFO", workflow.LogCISandboxNetwork, x.sandbox.Name())
	default:
		err = x.logf(ctx, run, "INFO", workflow.LogCISandbox, x.sandbox.Name())
	}
	if err != nil {
		return CIOutcome{}, err
	}
	eff := x.runConfig(run, s)
	if err := x.logf(ctx, run, "INFO", workflow.LogCICommand, eff.CICommand); err != nil {
		return CIOutcome{}, err
	}
	capture := newCICapture(int64(x.cfg.CIMaxLogLines), int64(x.cfg.CIMaxLogBytes), int64(x.cfg.CIArtifactMaxBytes))
	res, err := x.runCI(ctx, run, eff, dir, capture)
	if err != nil {
		return CIOutcome{}, err
	}
	name := fmt.Sprintf("ci-%d.log", run.Iteration)
	if x.artifacts != nil {
		content, lines := capture.artifact()
		if err := x.artifacts.Put(ctx, run.ID, run.Ticket.ID, name, content, lines); err != nil {
			return CIOutcome{}, fmt.Errorf("store the CI output artifact: %w", err)
		}
	}
	if capture.truncated() {
		artifact := name
		if x.artifacts == nil {
			artifact = ""
		}
		if err := run.Emit(ctx, &events.LogTruncatedData{Step: run.Step, Iteration: run.Iteration, LinesTotal: capture.linesTotal,
			BytesTotal: capture.bytesTotal, LinesEmitted: capture.linesEmitted, Artifact: artifact}); err != nil {
			return CIOutcome{}, err
		}
		if err := x.logf(ctx, run, "WARNING", workflow.LogCITruncated,
			capture.linesEmitted, capture.linesTotal, capture.bytesTotal, name); err != nil {
			return CIOutcome{}, err
		}
	}
	out := CIOutcome{Passed: res.Passed(), ExitCode: res.ExitCode, DurationMS: res.Duration.Milliseconds(), OutputTail: x.red.String(res.Tail)}
	s.turn(run.Iteration).CI = &out
	if err := saveState(run, s); err != nil {
		return CIOutcome{}, err
	}
	level, verdict := "INFO", workflow.LogCIPassed
	if !out.Passed {
		level, verdict = "WARNING", workflow.LogCIFailed
	}
	if err := x.logf(ctx, run, level, verdict, out.ExitCode, out.DurationMS); err != nil {
		return CIOutcome{}, err
	}
	return out, x.ciStatus(ctx, run, s, out)
}

func short(commit string) string {
	if len(commit) > 10 {
		return commit[:10]
	}
	return commit
}
