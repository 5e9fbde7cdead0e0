package executor

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/services/processor/agent"
	"github.com/ticketflow/ticketflow/services/processor/ci"
)

func TestRealConfigFromEnvironment(t *testing.T) {
	t.Setenv("TICKETFLOW_WORK_DIR", t.TempDir())
	t.Setenv("TICKETFLOW_REPOSITORY_ALLOWLIST", "git.example.com/team/*,github.com/acme/widgets")
	t.Setenv("OPENAI_API_KEY", "sk-x")
	t.Setenv("TICKETFLOW_CI_TIMEOUT", "90s")
	r, err := config.Load[RealConfig]()
	if err != nil {
		t.Fatal(err)
	}
	if r.CITimeout != 90*time.Second || r.LLMTimeout != 120*time.Second || r.LLMMaxAttempts != 4 || len(r.Repos.Allowlist) != 2 || r.Repos.FileRoot != "" {
		t.Errorf("config %+v", r)
	}
	x, err := NewReal(r, slog.New(slog.DiscardHandler), RealDeps{Sandbox: ci.Host{}})
	if err != nil || !strings.HasPrefix(x.llm.Name(), "openai:") {
		t.Errorf("provider with only OPENAI_API_KEY: %v %v", x, err)
	}
}

func TestProviderSelection(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		cfg  RealConfig
		want string
	}{
		{RealConfig{}, "demo"},
		{RealConfig{AnthropicKey: "a", OpenAIKey: "o"}, "anthropic:claude-sonnet-4-5"},
		{RealConfig{LLMProvider: "openai", OpenAIBaseURL: "http://127.0.0.1:11434/v1", OpenAIModel: "llama3"}, "openai:llama3"},
		{RealConfig{LLMProvider: "anthropic"}, "error"},
		{RealConfig{LLMProvider: "openai"}, "error"},
		{RealConfig{LLMProvider: "gemini"}, "error"},
	} {
		c.cfg.WorkDir = t.TempDir()
		x, err := NewReal(c.cfg, log, RealDeps{Sandbox: ci.Host{}})
		got := "error"
		if err == nil {
			got = x.llm.Name()
		}
		if got != c.want {
			t.Errorf("%+v: provider %s, want %s (%v)", c.cfg, got, c.want, err)
		}
	}
}

// The agent's limits and price table default the same from the environment and in code;
// a bad price table or a negative limit stops the processor at startup.
func TestAgentConfigDefaults(t *testing.T) {
	env := config.Defaults[RealConfig]()
	if env.LLMPrices != agent.DefaultPrices {
		t.Errorf("TICKETFLOW_LLM_PRICES default %q differs from agent.DefaultPrices %q", env.LLMPrices, agent.DefaultPrices)
	}
	var code RealConfig
	if err := code.agentDefaults(); err != nil {
		t.Fatal(err)
	}
	if code.AgentMaxSteps != env.AgentMaxSteps || code.AgentMaxTokens != env.AgentMaxTokens || code.AgentMaxDuration != env.AgentMaxDuration ||
		code.AgentMaxCostUSD != env.AgentMaxCostUSD || code.AgentMaxResponseTokens != env.AgentMaxResponseTokens || code.LLMPrices != env.LLMPrices {
		t.Errorf("in code %+v, from the environment %+v", code, env)
	}
	for _, bad := range []RealConfig{{LLMPrices: "m=x:1"}, {AgentMaxSteps: -1}} {
		bad.WorkDir = t.TempDir()
		if _, err := NewReal(bad, slog.New(slog.DiscardHandler), RealDeps{Sandbox: ci.Host{}}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
