// Package llm talks to language models. Providers: the Anthropic Messages API, any
// OpenAI-compatible chat-completions endpoint (OpenAI, local model servers), and an offline
// demo provider that calls nothing.
//
// The coding agent (package agent) drives them with tools (tools.go: Chat, ToolProvider). A
// model without tool support may still answer with one JSON object (see SystemPrompt and
// ParseChange): a summary and a list of whole-file edits. Whole files rather than unified
// diffs because models get line numbers and context lines of diffs wrong far more often than
// they get a file's content wrong; the cost is tokens on large files.
package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Message is one turn of the conversation; Role is "user" or "assistant".
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Request is what a provider sends.
type Request struct {
	System    string
	Messages  []Message
	MaxTokens int
}

// Provider completes a conversation with the model's text answer.
type Provider interface {
	Name() string
	Complete(ctx context.Context, req Request) (string, error)
}

// Edit replaces a file's whole content, or deletes it.
type Edit struct {
	Path    string  `json:"path"`
	Content *string `json:"content,omitempty"`
	Delete  bool    `json:"delete,omitempty"`
}

// Change is the model's structured answer.
type Change struct {
	Summary string `json:"summary"`
	Edits   []Edit `json:"edits"`
}

// SystemPrompt tells the model what it is and the one answer format ParseChange accepts.
const SystemPrompt = `You are ticketflow's coding agent. You change a git repository so that the ticket is done and the repository's CI command passes.
Answer with exactly one JSON object and nothing else:
{"summary": "<one or two sentences: what you changed and why>",
 "edits": [{"path": "<path relative to the repository root>", "content": "<the complete new content of the file>"},
           {"path": "<path>", "delete": true}]}
Rules: paths are relative, inside the repository, never under .git; "content" is the whole file, not a diff; include only files you change.
If CI output from an earlier attempt is given, fix what made it fail.`

// ErrBadChange is wrapped when the model's answer is not a usable change.
var ErrBadChange = errors.New("the model's answer is not a valid change")

// ParseChange extracts the JSON change from the model's answer (tolerating Markdown fences
// or prose around the object).
func ParseChange(text string) (Change, error) {
	start, end := strings.Index(text, "{"), strings.LastIndex(text, "}")
	if start < 0 || end < start {
		return Change{}, fmt.Errorf("%w: no JSON object in %q", ErrBadChange, clip(text, 200))
	}
	var c Change
	if err := json.Unmarshal([]byte(text[start:end+1]), &c); err != nil {
		return Change{}, fmt.Errorf("%w: %v", ErrBadChange, err)
	}
	c.Summary = strings.TrimSpace(c.Summary)
	if c.Summary == "" {
		return Change{}, fmt.Errorf("%w: empty summary", ErrBadChange)
	}
	seen := map[string]bool{}
	for i, e := range c.Edits {
		switch {
		case strings.TrimSpace(e.Path) == "":
			return Change{}, fmt.Errorf("%w: edit %d has no path", ErrBadChange, i)
		case e.Delete && e.Content != nil:
			return Change{}, fmt.Errorf("%w: edit of %s both deletes and writes", ErrBadChange, e.Path)
		case !e.Delete && e.Content == nil:
			return Change{}, fmt.Errorf("%w: edit of %s has no content", ErrBadChange, e.Path)
		case seen[e.Path]:
			return Change{}, fmt.Errorf("%w: %s edited twice", ErrBadChange, e.Path)
		}
		seen[e.Path] = true
	}
	return c, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
