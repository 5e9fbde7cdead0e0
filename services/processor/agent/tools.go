package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/ticketflow/ticketflow/services/processor/gitrepo"
	"github.com/ticketflow/ticketflow/services/processor/llm"
)

// Bounds on what one tool result puts in the conversation: the model pays for every byte.
const (
	maxResultBytes   = 24 << 10
	maxListedFiles   = 400
	maxSearchResults = 200
	defSearchResults = 50
	maxSearchLine    = 240
	maxSearchedFile  = 1 << 20
	maxReadLines     = 400
	maxCITail        = 6 << 10
)

// Tool names.
const (
	ToolListFiles  = "list_files"
	ToolReadFile   = "read_file"
	ToolSearch     = "search"
	ToolWriteFile  = "write_file"
	ToolEditFile   = "edit_file"
	ToolDeleteFile = "delete_file"
	ToolRunCI      = "run_ci"
)

// Specs are the tools as the model sees them.
var Specs = []llm.ToolSpec{
	{Name: ToolListFiles, Description: "List the repository's files (paths relative to the root), optionally under a directory.",
		Schema: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string","description":"directory to list; default the root"}},"additionalProperties":false}`)},
	{Name: ToolReadFile, Description: "Read a text file, optionally a range of lines (1-based, inclusive; at most 400 lines per call).",
		Schema: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"},"start_line":{"type":"integer","minimum":1},"end_line":{"type":"integer","minimum":1}},"required":["path"],"additionalProperties":false}`)},
	{Name: ToolSearch, Description: "Search the repository's text files with a regular expression (RE2 syntax, like ripgrep). Answers path:line: text, one match per line.",
		Schema: json.RawMessage(`{"type":"object","properties":{"pattern":{"type":"string"},"path":{"type":"string","description":"directory or file to search; default the root"},"max_results":{"type":"integer","minimum":1,"maximum":200}},"required":["pattern"],"additionalProperties":false}`)},
	{Name: ToolWriteFile, Description: "Create or replace a file with the complete new content.",
		Schema: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"},"content":{"type":"string"}},"required":["path","content"],"additionalProperties":false}`)},
	{Name: ToolEditFile, Description: "Patch a file: replace the exact text old_text, which must occur exactly once, with new_text.",
		Schema: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"},"old_text":{"type":"string"},"new_text":{"type":"string"}},"required":["path","old_text","new_text"],"additionalProperties":false}`)},
	{Name: ToolDeleteFile, Description: "Delete a file.",
		Schema: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"}},"required":["path"],"additionalProperties":false}`)},
	{Name: ToolRunCI, Description: "Run the ticket's CI command on the work tree as it is now, in the sandbox; answers the exit code and the last output lines.",
		Schema: json.RawMessage(`{"type":"object","properties":{},"additionalProperties":false}`)},
}

// CIReport is what one run_ci did.
type CIReport struct {
	Passed   bool
	ExitCode int
	Tail     string
}

// CIRunner runs the ticket's CI on the work tree (the executor's sandbox).
type CIRunner func(ctx context.Context) (CIReport, error)

// errTool is a failure the model caused (bad arguments, a path outside the repository): it
// goes back to the model as an error result and the loop goes on.
type errTool struct{ msg string }

func (e errTool) Error() string { return e.msg }

func toolErr(format string, args ...any) error { return errTool{fmt.Sprintf(format, args...)} }

// workspace is what the tools act on.
type workspace struct {
	dir      string
	runCI    CIRunner
	editable func(string) error
	changed  map[string]bool
}

// mayChange refuses, as the model's error, a path the repository's configuration does not
// let the agent write or delete.
func (w *workspace) mayChange(rel string) error {
	if w.editable == nil {
		return nil
	}
	if err := w.editable(rel); err != nil {
		return toolErr("%v", err)
	}
	return nil
}

// call runs one tool. A non-errTool error is the infrastructure's (CI could not start) and
// ends the loop.
func (w *workspace) call(ctx context.Context, name string, input json.RawMessage) (string, error) {
	var args struct {
		Path       *string `json:"path"`
		StartLine  int     `json:"start_line"`
		EndLine    int     `json:"end_line"`
		Pattern    *string `json:"pattern"`
		MaxResults int     `json:"max_results"`
		Content    *string `json:"content"`
		OldText    *string `json:"old_text"`
		NewText    *string `json:"new_text"`
	}
	if len(bytes.TrimSpace(input)) == 0 {
		input = json.RawMessage(`{}`)
	}
	dec := json.NewDecoder(bytes.NewReader(input))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&args); err != nil {
		return "", toolErr("the arguments are not a valid JSON object for %s: %v", name, err)
	}
	need := func(field string, v *string) (string, error) {
		if v == nil {
			return "", toolErr("%s needs %q", name, field)
		}
		return *v, nil
	}
	switch name {
	case ToolListFiles:
		return w.listFiles(deref(args.Path))
	case ToolReadFile:
		p, err := need("path", args.Path)
		if err != nil {
			return "", err
		}
		return w.readFile(p, args.StartLine, args.EndLine)
	case ToolSearch:
		pat, err := need("pattern", args.Pattern)
		if err != nil {
			return "", err
		}
		return w.search(pat, deref(args.Path), args.MaxResults)
	case ToolWriteFile:
		p, err := need("path", args.Path)
		if err != nil {
			return "", err
		}
		c, err := need("content", args.Content)
		if err != nil {
			return "", err
		}
		if err := w.mayChange(p); err != nil {
			return "", err
		}
		if err := gitrepo.WriteFile(w.dir, p, c); err != nil {
			return "", pathErr(err)
		}
		w.changed[filepath.Clean(p)] = true
		return fmt.Sprintf("wrote %s (%d bytes)", p, len(c)), nil
	case ToolEditFile:
		p, err := need("path", args.Path)
		if err != nil {
			return "", err
		}
		oldText, err := need("old_text", args.OldText)
		if err != nil {
			return "", err
		}
		newText, err := need("new_text", args.NewText)
		if err != nil {
			return "", err
		}
		return w.editFile(p, oldText, newText)
	case ToolDeleteFile:
		p, err := need("path", args.Path)
		if err != nil {
			return "", err
		}
		if _, err := os.Lstat(filepath.Join(w.dir, filepath.Clean(p))); errors.Is(err, os.ErrNotExist) {
			return "", toolErr("%s does not exist", p)
		}
		if err := w.mayChange(p); err != nil {
			return "", err
		}
		if err := gitrepo.RemoveFile(w.dir, p); err != nil {
			return "", pathErr(err)
		}
		w.changed[filepath.Clean(p)] = true
		return "deleted " + p, nil
	case ToolRunCI:
		if w.runCI == nil {
			return "", toolErr("run_ci is not available")
		}
		r, err := w.runCI(ctx)
		if err != nil {
			return "", err
		}
		tail := r.Tail
		if len(tail) > maxCITail {
			tail = "…" + tail[len(tail)-maxCITail:]
		}
		verdict := "CI passed"
		if !r.Passed {
			verdict = "CI failed"
		}
		return fmt.Sprintf("%s (exit code %d). Last output lines:\n%s", verdict, r.ExitCode, tail), nil
	}
	return "", toolErr("no tool named %q (tools: %s)", name, toolNames())
}

func toolNames() string {
	names := make([]string, len(Specs))
	for i, s := range Specs {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// pathErr turns a refused or missing path into the model's error.
func pathErr(err error) error {
	if errors.Is(err, gitrepo.ErrUnsafePath) || errors.Is(err, os.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return toolErr("%v", err)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return toolErr("%s: %v", filepath.Base(pe.Path), pe.Err)
	}
	return err
}

// resolve is rel inside the work tree, confined as gitrepo.SafePath confines the LLM's
// edits; "" and "." are the root.
func (w *workspace) resolve(rel string) (string, error) {
	if rel == "" || filepath.Clean(rel) == "." {
		return w.dir, nil
	}
	p, err := gitrepo.SafePath(w.dir, rel)
	if err != nil {
		return "", pathErr(err)
	}
	return p, nil
}

// walk visits the regular files under root, skipping .git and symbolic links, in lexical
// order; fn returns false to stop.
func (w *workspace) walk(root string, fn func(rel, abs string) bool) error {
	stop := errors.New("stop")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(w.dir, p)
		if !fn(filepath.ToSlash(rel), p) {
			return stop
		}
		return nil
	})
	if errors.Is(err, stop) {
		return nil
	}
	return err
}

func (w *workspace) listFiles(rel string) (string, error) {
	root, err := w.resolve(rel)
	if err != nil {
		return "", err
	}
	var files []string
	n := 0
	err = w.walk(root, func(rel, _ string) bool {
		n++
		if len(files) < maxListedFiles {
			files = append(files, rel)
		}
		return true
	})
	if err != nil {
		return "", pathErr(err)
	}
	out := strings.Join(files, "\n")
	if n > len(files) {
		out += fmt.Sprintf("\n... and %d more (list a directory, or search)", n-len(files))
	}
	if n == 0 {
		out = "(no files)"
	}
	return out, nil
}

// binary reports whether content looks like a binary file (a NUL in its first 8 KiB, as git
// and ripgrep decide).
func binary(content []byte) bool {
	return bytes.IndexByte(content[:min(len(content), 8000)], 0) >= 0
}

func (w *workspace) readFile(rel string, start, end int) (string, error) {
	p, err := w.resolve(rel)
	if err != nil {
		return "", err
	}
	content, err := os.ReadFile(p)
	if err != nil {
		return "", pathErr(err)
	}
	if binary(content) {
		return "", toolErr("%s is a binary file", rel)
	}
	lines := strings.SplitAfter(string(content), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	total := len(lines)
	if start <= 0 {
		start = 1
	}
	if end <= 0 || end > total {
		end = total
	}
	if start > total && total > 0 {
		return "", toolErr("%s has %d lines; start_line %d is past its end", rel, total, start)
	}
	if end-start+1 > maxReadLines {
		end = start + maxReadLines - 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s lines %d-%d of %d:\n", rel, start, end, total)
	for i := start; i <= end && i <= total; i++ {
		if b.Len()+len(lines[i-1]) > maxResultBytes {
			fmt.Fprintf(&b, "\n… stopped at line %d (result size limit); read from there", i)
			break
		}
		b.WriteString(lines[i-1])
	}
	return b.String(), nil
}

func (w *workspace) search(pattern, rel string, maxResults int) (string, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return "", toolErr("bad pattern: %v", err)
	}
	root, err := w.resolve(rel)
	if err != nil {
		return "", err
	}
	if maxResults <= 0 {
		maxResults = defSearchResults
	}
	maxResults = min(maxResults, maxSearchResults)
	var b strings.Builder
	hits, truncated := 0, false
	err = w.walk(root, func(rel, abs string) bool {
		fi, err := os.Stat(abs)
		if err != nil || fi.Size() > maxSearchedFile {
			return true
		}
		content, err := os.ReadFile(abs)
		if err != nil || binary(content) {
			return true
		}
		sc := bufio.NewScanner(bytes.NewReader(content))
		sc.Buffer(make([]byte, 0, 64<<10), maxSearchedFile)
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			if !re.MatchString(line) {
				continue
			}
			if hits == maxResults || b.Len() > maxResultBytes {
				truncated = true
				return false
			}
			if len(line) > maxSearchLine {
				line = line[:maxSearchLine] + "…"
			}
			fmt.Fprintf(&b, "%s:%d: %s\n", rel, n, line)
			hits++
		}
		return true
	})
	if err != nil {
		return "", pathErr(err)
	}
	switch {
	case hits == 0:
		return "no matches", nil
	case truncated:
		fmt.Fprintf(&b, "… more matches not shown (%d shown); narrow the pattern or the path", hits)
	}
	return b.String(), nil
}

func (w *workspace) editFile(rel, oldText, newText string) (string, error) {
	p, err := w.resolve(rel)
	if err != nil {
		return "", err
	}
	content, err := os.ReadFile(p)
	if err != nil {
		return "", pathErr(err)
	}
	if oldText == "" {
		return "", toolErr("old_text is empty: use write_file to create a file")
	}
	if err := w.mayChange(rel); err != nil {
		return "", err
	}
	switch n := strings.Count(string(content), oldText); n {
	case 0:
		return "", toolErr("old_text does not occur in %s (read the file again: it must match exactly, whitespace included)", rel)
	case 1:
	default:
		return "", toolErr("old_text occurs %d times in %s: include more context so it occurs once", n, rel)
	}
	updated := strings.Replace(string(content), oldText, newText, 1)
	if err := gitrepo.WriteFile(w.dir, rel, updated); err != nil {
		return "", pathErr(err)
	}
	w.changed[filepath.Clean(rel)] = true
	return fmt.Sprintf("edited %s (%d bytes replaced by %d)", rel, len(oldText), len(newText)), nil
}

// change is the work tree's edits as whole-file edits, for commit_changes to re-apply.
func (w *workspace) change(summary string) (llm.Change, error) {
	paths := make([]string, 0, len(w.changed))
	for p := range w.changed {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	c := llm.Change{Summary: summary, Edits: []llm.Edit{}}
	for _, rel := range paths {
		p, err := gitrepo.SafePath(w.dir, rel)
		if err != nil {
			return c, err
		}
		content, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			c.Edits = append(c.Edits, llm.Edit{Path: rel, Delete: true})
			continue
		}
		if err != nil {
			return c, err
		}
		s := string(content)
		c.Edits = append(c.Edits, llm.Edit{Path: rel, Content: &s})
	}
	return c, nil
}

// finish reads the model's final answer. A model that does not use tools (some local
// servers) may still answer with the whole change as one JSON object (llm.ParseChange's
// format): its edits are applied, confined like the tools' own.
func (w *workspace) finish(text string) (string, error) {
	summary := strings.TrimSpace(text)
	if c, err := llm.ParseChange(text); err == nil && len(c.Edits) > 0 {
		for _, e := range c.Edits { // all or nothing
			if err := w.mayChange(e.Path); err != nil {
				return "", err
			}
		}
		for _, e := range c.Edits {
			var err error
			if e.Delete {
				err = gitrepo.RemoveFile(w.dir, e.Path)
			} else {
				err = gitrepo.WriteFile(w.dir, e.Path, *e.Content)
			}
			if err != nil {
				return "", fmt.Errorf("apply the LLM's change: %w", err)
			}
			w.changed[filepath.Clean(e.Path)] = true
		}
		summary = c.Summary
	}
	if summary == "" {
		summary = "(the model gave no summary)"
	}
	return summary, nil
}
