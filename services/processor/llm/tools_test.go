package llm

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A conversation with a tool call and its (error) result, as each API spells it.
var toolTurns = []Turn{
	{Role: "user", Text: "fix it"},
	{Role: "assistant", Text: "looking", Calls: []ToolCall{{ID: "c1", Name: "read_file", Input: json.RawMessage(`{"path":"a.go"}`)},
		{ID: "c2", Name: "search", Input: json.RawMessage(`{"pattern": `)}}}, // malformed: cut off
	{Role: "user", Results: []ToolResult{{CallID: "c1", Content: "a.go lines 1-1 of 1:\npackage a\n"}, {CallID: "c2", Content: "bad arguments", IsError: true}}},
}

var toolSpecs = []ToolSpec{{Name: "read_file", Description: "read", Schema: json.RawMessage(`{"type":"object"}`)}}

func TestAnthropicToolUseWireFormat(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Tools []struct {
				Name        string          `json:"name"`
				InputSchema json.RawMessage `json:"input_schema"`
			} `json:"tools"`
			Messages []struct {
				Role    string           `json:"role"`
				Content []map[string]any `json:"content"`
			} `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if len(body.Tools) != 1 || body.Tools[0].Name != "read_file" || string(body.Tools[0].InputSchema) != `{"type":"object"}` {
			t.Errorf("tools %+v", body.Tools)
		}
		if len(body.Messages) != 3 {
			t.Fatalf("messages %+v", body.Messages)
		}
		asst, res := body.Messages[1].Content, body.Messages[2].Content
		if len(asst) != 3 || asst[0]["type"] != "text" || asst[1]["type"] != "tool_use" || asst[1]["id"] != "c1" ||
			asst[1]["input"].(map[string]any)["path"] != "a.go" || len(asst[2]["input"].(map[string]any)) != 0 {
			t.Errorf("assistant blocks %+v (a malformed input is sent as {})", asst)
		}
		if len(res) != 2 || res[0]["type"] != "tool_result" || res[0]["tool_use_id"] != "c1" || res[1]["is_error"] != true || body.Messages[2].Role != "user" {
			t.Errorf("tool results %+v", res)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"model": "claude-x-2026", "stop_reason": "tool_use", "usage": map[string]any{"input_tokens": 7, "output_tokens": 3},
			"content": []map[string]any{{"type": "text", "text": "next"}, {"type": "tool_use", "id": "c3", "name": "read_file", "input": map[string]any{"path": "b.go"}}}})
	}))
	defer srv.Close()
	resp, err := NewAnthropic("k", srv.URL, "claude-x", fast).Chat(context.Background(), ToolRequest{Turns: toolTurns, Tools: toolSpecs})
	if err != nil || resp.Text != "next" || len(resp.Calls) != 1 || resp.Calls[0].ID != "c3" || string(resp.Calls[0].Input) != `{"path":"b.go"}` ||
		resp.Usage != (Usage{7, 3}) || resp.Model != "claude-x-2026" || resp.Attempts != 1 {
		t.Errorf("%+v %v", resp, err)
	}
}

func TestOpenAIFunctionCallingWireFormat(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Tools []struct {
				Type     string `json:"type"`
				Function struct {
					Name       string          `json:"name"`
					Parameters json.RawMessage `json:"parameters"`
				} `json:"function"`
			} `json:"tools"`
			Messages []map[string]any `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if len(body.Tools) != 1 || body.Tools[0].Type != "function" || body.Tools[0].Function.Name != "read_file" {
			t.Errorf("tools %+v", body.Tools)
		}
		// system, user, assistant with tool_calls, then one role "tool" message per result.
		m := body.Messages
		if len(m) != 5 || m[0]["role"] != "system" || m[2]["role"] != "assistant" || m[3]["role"] != "tool" || m[3]["tool_call_id"] != "c1" ||
			m[4]["tool_call_id"] != "c2" || m[4]["content"] != "ERROR: bad arguments" {
			t.Fatalf("messages %+v", m)
		}
		calls := m[2]["tool_calls"].([]any)
		c2 := calls[1].(map[string]any)["function"].(map[string]any)
		if len(calls) != 2 || c2["arguments"] != `{"pattern": ` {
			t.Errorf("tool calls %+v (arguments are sent back as the model wrote them)", calls)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"model": "gpt-x", "usage": map[string]any{"prompt_tokens": 11, "completion_tokens": 2},
			"choices": []map[string]any{{"index": 0, "finish_reason": "tool_calls", "message": map[string]any{"role": "assistant", "content": nil,
				"tool_calls": []map[string]any{{"id": "c3", "type": "function", "function": map[string]any{"name": "read_file", "arguments": `{"path":"b.go"}`}}}}}}})
	}))
	defer srv.Close()
	resp, err := NewOpenAI("", srv.URL, "gpt-x", fast).Chat(context.Background(), ToolRequest{System: "sys", Turns: toolTurns, Tools: toolSpecs})
	if err != nil || len(resp.Calls) != 1 || resp.Calls[0].Name != "read_file" || string(resp.Calls[0].Input) != `{"path":"b.go"}` ||
		resp.Usage != (Usage{11, 2}) || resp.StopReason != "tool_calls" {
		t.Errorf("%+v %v", resp, err)
	}
}
