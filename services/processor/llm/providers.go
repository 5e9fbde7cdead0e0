package llm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// Anthropic speaks the Messages API (POST {base}/v1/messages).
type Anthropic struct{ endpoint }

// NewAnthropic returns the provider; baseURL defaults to https://api.anthropic.com and
// model to claude-sonnet-4-5.
func NewAnthropic(key, baseURL, model string, hc HTTPConfig) *Anthropic {
	return &Anthropic{newEndpoint(key, baseURL, "https://api.anthropic.com", model, "claude-sonnet-4-5", hc)}
}

// endpoint is what a provider posts to: its key, base URL (no trailing slash), model and HTTP
// settings.
type endpoint struct {
	Key, BaseURL, Model string
	HTTP                HTTPConfig
}

// newEndpoint fills an endpoint, baseURL defaulting to defBase and model to defModel.
func newEndpoint(key, baseURL, defBase, model, defModel string, hc HTTPConfig) endpoint {
	if baseURL == "" {
		baseURL = defBase
	}
	if model == "" {
		model = defModel
	}
	return endpoint{Key: key, BaseURL: strings.TrimRight(baseURL, "/"), Model: model, HTTP: hc.withDefaults()}
}

func (a *Anthropic) Name() string { return "anthropic:" + a.Model }

// post sends body to the Messages API and decodes the answer into out; it returns the
// attempts it made.
func (a *Anthropic) post(ctx context.Context, body, out any) (int, error) {
	headers := map[string]string{"x-api-key": a.Key, "anthropic-version": "2023-06-01"}
	return postJSONCounted(ctx, a.HTTP, a.BaseURL+"/v1/messages", headers, body, out)
}

func (a *Anthropic) Complete(ctx context.Context, req Request) (string, error) {
	body := map[string]any{"model": a.Model, "max_tokens": maxTokens(req), "system": req.System, "messages": req.Messages}
	var out struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		StopReason string `json:"stop_reason"`
	}
	if _, err := a.post(ctx, body, &out); err != nil {
		return "", fmt.Errorf("anthropic: %w", err)
	}
	var text strings.Builder
	for _, c := range out.Content {
		if c.Type == "text" {
			text.WriteString(c.Text)
		}
	}
	if text.Len() == 0 {
		return "", fmt.Errorf("anthropic: %w (stop_reason %q)", errEmptyAnswer, out.StopReason)
	}
	return text.String(), nil
}

// OpenAI speaks chat completions (POST {base}/chat/completions): OpenAI itself or any
// compatible server (vLLM, Ollama, llama.cpp, LM Studio...). The key may be empty for local
// servers.
type OpenAI struct{ endpoint }

// NewOpenAI returns the provider; baseURL defaults to https://api.openai.com/v1 and model to
// gpt-4o-mini.
func NewOpenAI(key, baseURL, model string, hc HTTPConfig) *OpenAI {
	return &OpenAI{newEndpoint(key, baseURL, "https://api.openai.com/v1", model, "gpt-4o-mini", hc)}
}

func (o *OpenAI) Name() string { return "openai:" + o.Model }

// post sends body to chat completions (with the key, when there is one) and decodes the
// answer into out; it returns the attempts it made.
func (o *OpenAI) post(ctx context.Context, body, out any) (int, error) {
	headers := map[string]string{}
	if o.Key != "" {
		headers["Authorization"] = "Bearer " + o.Key
	}
	return postJSONCounted(ctx, o.HTTP, o.BaseURL+"/chat/completions", headers, body, out)
}

func (o *OpenAI) Complete(ctx context.Context, req Request) (string, error) {
	msgs := make([]Message, 0, len(req.Messages)+1)
	if req.System != "" {
		msgs = append(msgs, Message{Role: "system", Content: req.System})
	}
	msgs = append(msgs, req.Messages...)
	body := map[string]any{"model": o.Model, "max_tokens": maxTokens(req), "messages": msgs}
	var out struct {
		Choices []struct {
			Message      Message `json:"message"`
			FinishReason string  `json:"finish_reason"`
		} `json:"choices"`
	}
	if _, err := o.post(ctx, body, &out); err != nil {
		return "", fmt.Errorf("openai: %w", err)
	}
	if len(out.Choices) == 0 || out.Choices[0].Message.Content == "" {
		return "", fmt.Errorf("openai: %w", errEmptyAnswer)
	}
	return out.Choices[0].Message.Content, nil
}

func maxTokens(req Request) int {
	if req.MaxTokens > 0 {
		return req.MaxTokens
	}
	return 8192
}

// Demo is the offline provider used when no key is configured: it calls nothing and answers
// with a small deterministic change (a ticketflow-demo.md note naming the ticket and the
// attempt), so the whole pipeline — commit, push, CI — can be seen working without an LLM.
type Demo struct{}

func (Demo) Name() string { return "demo" }

// DemoFile is the file the demo provider writes.
const DemoFile = "ticketflow-demo.md"

func (Demo) Complete(_ context.Context, req Request) (string, error) {
	title := "ticket"
	if len(req.Messages) > 0 {
		first := req.Messages[0].Content
		if line, _, _ := strings.Cut(first, "\n"); strings.TrimSpace(line) != "" {
			title = strings.TrimSpace(strings.TrimPrefix(line, "Ticket:"))
		}
	}
	attempt := (len(req.Messages) + 1) / 2
	var last string
	if len(req.Messages) > 0 {
		last = req.Messages[len(req.Messages)-1].Content
	}
	sum := sha256.Sum256([]byte(last))
	content := fmt.Sprintf("# %s\n\nAttempt %d, written by ticketflow's offline demo provider: no LLM was called.\nConversation digest: %s\n",
		title, attempt, hex.EncodeToString(sum[:6]))
	c := Change{Summary: fmt.Sprintf("Demo change (attempt %d): wrote %s", attempt, DemoFile), Edits: []Edit{{Path: DemoFile, Content: &content}}}
	b, err := json.Marshal(c)
	return string(b), err
}
