package llm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/services/processor/redact"
)

const answer = "Here you go:\n```json\n{\"summary\": \"add hello\", \"edits\": [{\"path\": \"hello.txt\", \"content\": \"hi\\n\"}, {\"path\": \"old.txt\", \"delete\": true}]}\n```"

var fast = HTTPConfig{Timeout: 2 * time.Second, MaxAttempts: 3, Backoff: 10 * time.Millisecond}

func TestAnthropicMessagesFormatAndRetry(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(529)
			io.WriteString(w, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
			return
		}
		if r.URL.Path != "/v1/messages" || r.Header.Get("x-api-key") != "sk-ant-test" || r.Header.Get("anthropic-version") != "2023-06-01" {
			t.Errorf("request %s %v", r.URL.Path, r.Header)
		}
		var body struct {
			Model     string    `json:"model"`
			MaxTokens int       `json:"max_tokens"`
			System    string    `json:"system"`
			Messages  []Message `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Error(err)
		}
		if body.Model != "claude-test" || body.MaxTokens <= 0 || body.System != "sys" || len(body.Messages) != 1 || body.Messages[0].Role != "user" {
			t.Errorf("body %+v", body)
		}
		json.NewEncoder(w).Encode(map[string]any{"type": "message", "role": "assistant", "stop_reason": "end_turn",
			"content": []map[string]any{{"type": "text", "text": answer}}})
	}))
	defer srv.Close()
	p := NewAnthropic("sk-ant-test", srv.URL, "claude-test", fast)
	text, err := p.Complete(context.Background(), Request{System: "sys", Messages: []Message{{Role: "user", Content: "do it"}}})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 {
		t.Errorf("%d calls, want 2 (one retry after 529)", calls.Load())
	}
	c, err := ParseChange(text)
	if err != nil || c.Summary != "add hello" || len(c.Edits) != 2 || *c.Edits[0].Content != "hi\n" || !c.Edits[1].Delete {
		t.Errorf("change %+v %v", c, err)
	}
}

func TestOpenAIChatCompletionsFormat(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer sk-openai-test" {
			t.Errorf("request %s %v", r.URL.Path, r.Header)
		}
		var body struct {
			Model    string    `json:"model"`
			Messages []Message `json:"messages"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		if body.Model != "local-model" || len(body.Messages) != 3 || body.Messages[0].Role != "system" || body.Messages[2].Role != "assistant" {
			t.Errorf("body %+v", body)
		}
		json.NewEncoder(w).Encode(map[string]any{"choices": []map[string]any{{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": answer}}}})
	}))
	defer srv.Close()
	p := NewOpenAI("sk-openai-test", srv.URL+"/v1/", "local-model", fast)
	text, err := p.Complete(context.Background(), Request{System: "sys", Messages: []Message{{Role: "user", Content: "a"}, {Role: "assistant", Content: "b"}}})
	if err != nil || !strings.Contains(text, "add hello") {
		t.Fatalf("%q %v", text, err)
	}
}

func TestNoRetryOnClientErrorAndKeyRedacted(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"message":"invalid key sk-leaky-key-123"}}`)
	}))
	defer srv.Close()
	cfg := fast
	cfg.Redactor = redact.New("sk-leaky-key-123")
	_, err := NewOpenAI("sk-leaky-key-123", srv.URL, "m", cfg).Complete(context.Background(), Request{Messages: []Message{{Role: "user", Content: "x"}}})
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 401 || calls.Load() != 1 {
		t.Fatalf("err %v after %d calls", err, calls.Load())
	}
	if strings.Contains(err.Error(), "sk-leaky-key-123") {
		t.Errorf("key in error: %v", err)
	}
}

func TestGivesUpAfterMaxAttemptsAndHonoursTimeout(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			time.Sleep(500 * time.Millisecond) // slower than the attempt timeout
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	cfg := fast
	cfg.Timeout = 100 * time.Millisecond
	_, err := NewAnthropic("k", srv.URL, "", cfg).Complete(context.Background(), Request{Messages: []Message{{Role: "user", Content: "x"}}})
	if err == nil || calls.Load() != 3 || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("err %v after %d calls", err, calls.Load())
	}
}

func TestParseChangeRejectsBadAnswers(t *testing.T) {
	for _, s := range []string{"no json here", `{"summary": "", "edits": []}`, `{"summary": "x", "edits": [{"path": "a"}]}`,
		`{"summary": "x", "edits": [{"path": "", "content": "a"}]}`, `{"summary": "x", "edits": [{"path": "a", "content": "1"}, {"path": "a", "delete": true}]}`,
		`{"summary": "x", "edits": [{"path": "a", "content": "1", "delete": true}]}`, `{"summary": "x", "edits": 3}`} {
		if _, err := ParseChange(s); !errors.Is(err, ErrBadChange) {
			t.Errorf("%s accepted: %v", s, err)
		}
	}
}

func TestDemoIsDeterministic(t *testing.T) {
	req := Request{Messages: []Message{{Role: "user", Content: "Ticket: Add a greeting\nbody"}}}
	a, err := Demo{}.Complete(context.Background(), req)
	b, _ := Demo{}.Complete(context.Background(), req)
	if err != nil || a != b {
		t.Fatalf("%q vs %q (%v)", a, b, err)
	}
	c, err := ParseChange(a)
	if err != nil || len(c.Edits) != 1 || c.Edits[0].Path != DemoFile || !strings.Contains(*c.Edits[0].Content, "Add a greeting") ||
		!strings.Contains(*c.Edits[0].Content, "no LLM was called") {
		t.Errorf("%+v %v", c, err)
	}
}

// The demo provider reports a usage (about four bytes a token of the conversation it was sent
// and of its answer), the same for the same conversation, larger as the conversation grows.
func TestDemoReportsUsage(t *testing.T) {
	req := ToolRequest{System: "you are an agent", Turns: []Turn{{Role: "user", Text: "Ticket: Invoice rounding\nfix it"}}}
	a, err := Demo{}.Chat(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Demo{}.Chat(context.Background(), req)
	if a.Usage.InputTokens <= 1 || a.Usage.OutputTokens <= 1 || a.Usage != b.Usage {
		t.Fatalf("usage %+v then %+v", a.Usage, b.Usage)
	}
	longer := req
	longer.Turns = append(slices.Clone(req.Turns), Turn{Role: "assistant", Calls: a.Calls},
		Turn{Role: "user", Results: []ToolResult{{CallID: a.Calls[0].ID, Content: strings.Repeat("match\n", 100)}}})
	c, _ := Demo{}.Chat(context.Background(), longer)
	if c.Usage.InputTokens <= a.Usage.InputTokens {
		t.Fatalf("a longer conversation counted %d input tokens, the shorter %d", c.Usage.InputTokens, a.Usage.InputTokens)
	}
}
