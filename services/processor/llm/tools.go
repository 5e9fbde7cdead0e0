package llm

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Tool calling: the model is given tools (name, description, JSON Schema of the input) and
// answers either with tool calls, whose results the caller sends back in the next turn, or
// with text when it is done. Anthropic and OpenAI-compatible servers spell this differently
// (tool_use / tool_result content blocks; tool_calls / role "tool" messages); Turn is the
// neutral form both are translated from and to.

// ToolSpec describes one tool to the model.
type ToolSpec struct {
	Name        string
	Description string
	// Schema is the JSON Schema of the tool's input (an object).
	Schema json.RawMessage
}

// ToolCall is one call the model asked for. Input is the arguments as the model wrote them:
// it may be invalid JSON (OpenAI-compatible servers pass arguments as a string), which the
// caller answers with an error result.
type ToolCall struct {
	ID    string
	Name  string
	Input json.RawMessage
}

// ToolResult answers one ToolCall.
type ToolResult struct {
	CallID  string
	Content string
	IsError bool
}

// Turn is one message of a tool conversation. A user turn has Text and/or Results; an
// assistant turn has Text and/or Calls.
type Turn struct {
	Role    string
	Text    string
	Calls   []ToolCall
	Results []ToolResult
}

// ToolRequest is one round trip of the loop.
type ToolRequest struct {
	System    string
	Turns     []Turn
	Tools     []ToolSpec
	MaxTokens int
}

// Usage is what a response cost in tokens, as the provider counted them.
type Usage struct {
	InputTokens  int64
	OutputTokens int64
}

// ToolResponse is the model's answer: calls to make, or (no calls) its final text.
type ToolResponse struct {
	Text  string
	Calls []ToolCall
	// StopReason is the provider's (end_turn, tool_use, stop, tool_calls, refusal...).
	StopReason string
	// Refusal is set when the model declined the task (Anthropic stop_reason "refusal",
	// OpenAI's message.refusal or finish_reason "content_filter").
	Refusal string
	Usage   Usage
	// Model is the model that answered (the provider's echo, else the configured one).
	Model string
	// Attempts is the number of HTTP attempts the answer took (1 = no retry).
	Attempts int
	Latency  time.Duration
}

// ToolProvider is a provider that can drive the agent loop.
type ToolProvider interface {
	Provider
	// Vendor is "anthropic", "openai" or "demo" (the label of cost metrics and events).
	Vendor() string
	// ModelName is the configured model.
	ModelName() string
	Chat(ctx context.Context, req ToolRequest) (ToolResponse, error)
}

// ErrRefused is wrapped when the model declined to do the task.
var ErrRefused = errors.New("the model refused")

func (a *Anthropic) Vendor() string    { return "anthropic" }
func (a *Anthropic) ModelName() string { return a.Model }

type anthropicBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   string          `json:"content,omitempty"`
	IsError   bool            `json:"is_error,omitempty"`
}

type anthropicMessage struct {
	Role    string           `json:"role"`
	Content []anthropicBlock `json:"content"`
}

// objectOrEmpty is input as a JSON object, or {} when the model wrote something else: the
// Messages API refuses a tool_use whose input is not an object.
func objectOrEmpty(input json.RawMessage) json.RawMessage {
	var m map[string]any
	if json.Unmarshal(input, &m) != nil || m == nil {
		return json.RawMessage(`{}`)
	}
	return input
}

// decodedAnswer is a model answer: what it says of its model and token usage.
type decodedAnswer interface {
	meta() answerMeta
}

// answerMeta is what both APIs' answers carry alike; the usage object has other names in each
// (Anthropic's input/output_tokens, OpenAI's prompt/completion_tokens).
type answerMeta struct {
	Model string `json:"model"`
	Usage struct {
		InputTokens      int64 `json:"input_tokens"`
		OutputTokens     int64 `json:"output_tokens"`
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
}

func (m *answerMeta) meta() answerMeta { return *m }

type anthropicAnswer struct {
	answerMeta
	Content    []anthropicBlock `json:"content"`
	StopReason string           `json:"stop_reason"`
}

type openaiAnswer struct {
	answerMeta
	Choices []struct {
		Message      openaiMessage `json:"message"`
		FinishReason string        `json:"finish_reason"`
	} `json:"choices"`
}

// exchange posts one turn's body and decodes the answer into out; the response it starts holds what
// both APIs report alike (attempts, latency, model, usage), the error names the vendor.
func exchange(ctx context.Context, post func(ctx context.Context, body, out any) (int, error), vendor, model string, body any, out decodedAnswer) (ToolResponse, error) {
	start := time.Now()
	attempts, err := post(ctx, body, out)
	if err != nil {
		return ToolResponse{Attempts: attempts}, fmt.Errorf("%s: %w", vendor, err)
	}
	m := out.meta()
	return ToolResponse{Attempts: attempts, Latency: time.Since(start), Model: cmp.Or(m.Model, model),
		Usage: Usage{InputTokens: m.Usage.InputTokens + m.Usage.PromptTokens, OutputTokens: m.Usage.OutputTokens + m.Usage.CompletionTokens}}, nil
}

func (a *Anthropic) Chat(ctx context.Context, req ToolRequest) (ToolResponse, error) {
	msgs := make([]anthropicMessage, 0, len(req.Turns))
	for _, t := range req.Turns {
		m := anthropicMessage{Role: t.Role}
		for _, r := range t.Results {
			m.Content = append(m.Content, anthropicBlock{Type: "tool_result", ToolUseID: r.CallID, Content: r.Content, IsError: r.IsError})
		}
		if t.Text != "" {
			m.Content = append(m.Content, anthropicBlock{Type: "text", Text: t.Text})
		}
		for _, c := range t.Calls {
			m.Content = append(m.Content, anthropicBlock{Type: "tool_use", ID: c.ID, Name: c.Name, Input: objectOrEmpty(c.Input)})
		}
		if len(m.Content) == 0 {
			m.Content = []anthropicBlock{{Type: "text", Text: "(empty)"}}
		}
		msgs = append(msgs, m)
	}
	tools := make([]map[string]any, len(req.Tools))
	for i, t := range req.Tools {
		tools[i] = map[string]any{"name": t.Name, "description": t.Description, "input_schema": t.Schema}
	}
	body := map[string]any{"model": a.Model, "max_tokens": maxTokens(Request{MaxTokens: req.MaxTokens}), "system": req.System,
		"messages": msgs, "tools": tools}
	var out anthropicAnswer
	resp, err := exchange(ctx, a.post, "anthropic", a.Model, body, &out)
	if err != nil {
		return resp, err
	}
	resp.StopReason = out.StopReason
	var text strings.Builder
	for _, b := range out.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "tool_use":
			resp.Calls = append(resp.Calls, ToolCall{ID: b.ID, Name: b.Name, Input: b.Input})
		}
	}
	resp.Text = text.String()
	if out.StopReason == "refusal" {
		resp.Refusal = clip(strings.TrimSpace(resp.Text+" (stop_reason refusal)"), 500)
	}
	return resp, nil
}

func (o *OpenAI) Vendor() string    { return "openai" }
func (o *OpenAI) ModelName() string { return o.Model }

type openaiToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type openaiMessage struct {
	Role       string           `json:"role"`
	Content    *string          `json:"content"`
	ToolCalls  []openaiToolCall `json:"tool_calls,omitempty"`
	ToolCallID string           `json:"tool_call_id,omitempty"`
	Refusal    string           `json:"refusal,omitempty"`
}

func (o *OpenAI) Chat(ctx context.Context, req ToolRequest) (ToolResponse, error) {
	str := func(s string) *string { return &s }
	msgs := make([]openaiMessage, 0, len(req.Turns)+1)
	if req.System != "" {
		msgs = append(msgs, openaiMessage{Role: "system", Content: str(req.System)})
	}
	for _, t := range req.Turns {
		// Tool results are messages of their own, right after the assistant's calls.
		for _, r := range t.Results {
			content := r.Content
			if r.IsError {
				content = "ERROR: " + content
			}
			msgs = append(msgs, openaiMessage{Role: "tool", ToolCallID: r.CallID, Content: str(content)})
		}
		if t.Role == "user" && t.Text == "" {
			continue
		}
		m := openaiMessage{Role: t.Role}
		if t.Text != "" || len(t.Calls) == 0 {
			m.Content = str(t.Text)
		}
		for _, c := range t.Calls {
			tc := openaiToolCall{ID: c.ID, Type: "function"}
			tc.Function.Name, tc.Function.Arguments = c.Name, string(c.Input)
			m.ToolCalls = append(m.ToolCalls, tc)
		}
		msgs = append(msgs, m)
	}
	tools := make([]map[string]any, len(req.Tools))
	for i, t := range req.Tools {
		tools[i] = map[string]any{"type": "function", "function": map[string]any{"name": t.Name, "description": t.Description, "parameters": t.Schema}}
	}
	body := map[string]any{"model": o.Model, "max_tokens": maxTokens(Request{MaxTokens: req.MaxTokens}), "messages": msgs, "tools": tools}
	var out openaiAnswer
	resp, err := exchange(ctx, o.post, "openai", o.Model, body, &out)
	if err != nil {
		return resp, err
	}
	if len(out.Choices) == 0 {
		return resp, fmt.Errorf("openai: %w (no choices)", errEmptyAnswer)
	}
	ch := out.Choices[0]
	resp.StopReason = ch.FinishReason
	if ch.Message.Content != nil {
		resp.Text = *ch.Message.Content
	}
	for _, c := range ch.Message.ToolCalls {
		resp.Calls = append(resp.Calls, ToolCall{ID: c.ID, Name: c.Function.Name, Input: json.RawMessage(c.Function.Arguments)})
	}
	switch {
	case ch.Message.Refusal != "":
		resp.Refusal = clip(ch.Message.Refusal, 500)
	case ch.FinishReason == "content_filter":
		resp.Refusal = "finish_reason content_filter"
	}
	return resp, nil
}
