package llm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

func (Demo) Vendor() string    { return "demo" }
func (Demo) ModelName() string { return "demo" }

// Demo drives the agent loop with a fixed script, so the loop's tools, events and limits can
// be watched without an LLM: search the repository for the ticket title's longest word, read
// the first file that matches (or list the files when none does), write DemoFile naming what
// it found, run CI, then finish. Which move comes next is read off the conversation (the
// number of tool results since the task), so the same conversation always gets the same move.
func (d Demo) Chat(ctx context.Context, req ToolRequest) (ToolResponse, error) {
	resp, err := d.move(ctx, req)
	resp.Usage = demoUsage(req, resp)
	return resp, err
}

// demoUsage counts the demo's tokens as a model would roughly count them (four bytes a token)
// of what it was sent and what it answered, so a demo run has a usage and, priced in
// TICKETFLOW_LLM_PRICES, a cost like a real one; the same conversation, the same count.
func demoUsage(req ToolRequest, resp ToolResponse) Usage {
	in := len(req.System)
	for _, t := range req.Turns {
		in += len(t.Text)
		for _, c := range t.Calls {
			in += len(c.Name) + len(c.Input)
		}
		for _, r := range t.Results {
			in += len(r.Content)
		}
	}
	for _, spec := range req.Tools {
		in += len(spec.Name) + len(spec.Description) + len(spec.Schema)
	}
	out := len(resp.Text)
	for _, c := range resp.Calls {
		out += len(c.Name) + len(c.Input)
	}
	return Usage{InputTokens: int64(in/4 + 1), OutputTokens: int64(out/4 + 1)}
}

func (Demo) move(_ context.Context, req ToolRequest) (ToolResponse, error) {
	task, moves, last := "", 0, ""
	for _, t := range req.Turns {
		if t.Role == "user" && len(t.Results) == 0 && t.Text != "" {
			task, moves, last = t.Text, 0, ""
			continue
		}
		if len(t.Results) > 0 {
			moves++
			last = t.Results[0].Content
		}
	}
	title := "ticket"
	if line, _, _ := strings.Cut(task, "\n"); strings.TrimSpace(strings.TrimPrefix(line, "Ticket:")) != "" {
		title = strings.TrimSpace(strings.TrimPrefix(line, "Ticket:"))
	}
	call := func(name string, input any) (ToolResponse, error) {
		b, err := json.Marshal(input)
		return ToolResponse{Calls: []ToolCall{{ID: fmt.Sprintf("demo-%d", moves+1), Name: name, Input: b}},
			StopReason: "tool_use", Model: "demo", Attempts: 1}, err
	}
	target := demoTarget(req.Turns)
	switch moves {
	case 0:
		return call("search", map[string]any{"pattern": "(?i)" + regexp.QuoteMeta(longestWord(title)), "max_results": 20})
	case 1:
		if path := firstHitPath(last); path != "" {
			return call("read_file", map[string]any{"path": path, "start_line": 1, "end_line": 40})
		}
		return call("list_files", map[string]any{})
	case 2:
		sum := sha256.Sum256([]byte(task))
		where := "nothing in the repository matched the ticket's title"
		if target != "" {
			where = "the ticket's subject appears in " + target
		}
		content := fmt.Sprintf("# %s\n\nWritten by ticketflow's offline demo provider: no LLM was called.\nSearch: %s.\nConversation digest: %s\n",
			title, where, hex.EncodeToString(sum[:6]))
		return call("write_file", map[string]any{"path": DemoFile, "content": content})
	case 3:
		return call("run_ci", map[string]any{})
	}
	return ToolResponse{Text: fmt.Sprintf("Demo change: wrote %s after searching the repository and running CI.", DemoFile),
		StopReason: "end_turn", Model: "demo", Attempts: 1}, nil
}

// demoTarget is the file the demo's first search found, if any.
func demoTarget(turns []Turn) string {
	for i := len(turns) - 1; i >= 0; i-- {
		t := turns[i]
		if t.Role == "user" && len(t.Results) == 0 && t.Text != "" {
			if i+2 < len(turns) && len(turns[i+2].Results) > 0 {
				return firstHitPath(turns[i+2].Results[0].Content)
			}
			return ""
		}
	}
	return ""
}

// firstHitPath reads "path:line: text" (the search tool's format) off the first line.
func firstHitPath(result string) string {
	line, _, _ := strings.Cut(result, "\n")
	path, rest, ok := strings.Cut(line, ":")
	if !ok || rest == "" || !unicode.IsDigit(rune(rest[0])) {
		return ""
	}
	return path
}

func longestWord(s string) string {
	best := ""
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' }) {
		if len(w) > len(best) {
			best = w
		}
	}
	if best == "" {
		return "ticket"
	}
	return best
}
