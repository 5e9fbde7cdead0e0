// Package repoconfig reads a repository's own configuration, the optional .ticketflow.yml at
// its root: the CI command and its timeout, the paths the coding agent may edit, lower agent
// limits, and which of the ticket's fields may override the repository's values.
//
// The file comes from the repository, so it is treated as hostile: it is parsed strictly
// (unknown fields, wrong types, duplicate keys and a second document are errors, each naming
// the field and its line), it is capped at MaxBytes, a symbolic link leaving the clone is
// refused, and its limits can only lower the operator's (TICKETFLOW_AGENT_*,
// TICKETFLOW_CI_TIMEOUT), never raise them.
package repoconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"go.yaml.in/yaml/v3"
)

// FileName is the configuration file, at the repository root.
const FileName = ".ticketflow.yml"

// MaxBytes bounds the file: a larger one is refused before it is parsed.
const MaxBytes = 64 << 10

// Version is the only schema version this build reads (`version: 1`).
const Version = 1

// Bounds on values a repository may set.
const (
	maxCommandBytes = 2000 // the ticket's ci_command has the same bound
	maxEditable     = 100
	maxGlobBytes    = 300
)

// Config is the file's content.
type Config struct {
	Version   int       `yaml:"version"`
	CI        CI        `yaml:"ci"`
	Agent     Agent     `yaml:"agent"`
	Overrides Overrides `yaml:"overrides"`
}

// CI is how the repository's CI runs.
type CI struct {
	// Command is run with sh -c at the repository root; "" leaves the ticket's.
	Command string `yaml:"command"`
	// Timeout bounds one CI execution; it only lowers TICKETFLOW_CI_TIMEOUT. 0: the operator's.
	Timeout time.Duration `yaml:"timeout"`
}

// Agent bounds the coding agent. Zero limits leave the operator's; set ones only lower them.
type Agent struct {
	// Editable are the doublestar globs (relative to the root, "/"-separated) of the paths
	// the agent may write or delete; empty (absent): every path of the repository.
	Editable    []string      `yaml:"editable"`
	MaxSteps    int           `yaml:"max_steps"`
	MaxTokens   int64         `yaml:"max_tokens"`
	MaxCostUSD  float64       `yaml:"max_cost_usd"`
	MaxDuration time.Duration `yaml:"max_duration"`
}

// Overrides says which of the ticket's fields may replace the repository's values.
type Overrides struct {
	// CICommand lets a ticket's ci_command replace ci.command (default: refused).
	CICommand bool `yaml:"ci_command"`
}

// Error is a file the parser refuses: the field (dotted path, e.g. agent.max_steps; "" for
// the document itself) and its line (0 when the error has none, e.g. the file's size).
type Error struct {
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(FileName)
	if e.Line > 0 {
		fmt.Fprintf(&b, ": line %d", e.Line)
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	return b.String() + ": " + e.Msg
}

func errAt(n *yaml.Node, field, format string, args ...any) error {
	return &Error{Line: n.Line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Parse reads the file's content strictly: see the package doc.
func Parse(data []byte) (*Config, error) {
	if len(data) > MaxBytes {
		return nil, &Error{Msg: fmt.Sprintf("the file is %d bytes, more than the %d allowed", len(data), MaxBytes)}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Line: 1, Field: "version", Msg: "the file is empty; it needs at least version: 1"}
		}
		return nil, syntaxErr(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, syntaxErr(err)
		}
		return nil, &Error{Line: line, Msg: "a second YAML document; the file must hold one"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	var c Config
	if err := walk(root, &c); err != nil {
		return nil, err
	}
	// The walk has checked every field; the library's strict decoding must agree with it.
	var strict Config
	sd := yaml.NewDecoder(bytes.NewReader(data))
	sd.KnownFields(true)
	if err := sd.Decode(&strict); err != nil {
		return nil, syntaxErr(err)
	}
	return &c, nil
}

// syntaxErr is a yaml error as an Error: yaml's messages carry "line N: ...".
func syntaxErr(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ":"); ok {
			if _, err := fmt.Sscanf(n, "%d", &line); err == nil {
				msg = strings.TrimSpace(after)
			}
		}
	}
	return &Error{Line: line, Msg: "not valid YAML: " + msg}
}

// fields is a mapping's keys with their value nodes, in order, refusing what is not a
// mapping, a non-string key, a duplicate key and any key outside known.
func fields(n *yaml.Node, field string, known ...string) ([][2]*yaml.Node, error) {
	if n.Kind == yaml.AliasNode {
		return nil, errAt(n, field, "aliases are not allowed")
	}
	if n.Kind != yaml.MappingNode {
		return nil, errAt(n, field, "must be a mapping (key: value lines)")
	}
	seen := map[string]bool{}
	var out [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := join(field, k.Value)
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			return nil, errAt(k, join(field, "?"), "keys must be plain names")
		}
		if seen[k.Value] {
			return nil, errAt(k, name, "defined twice")
		}
		seen[k.Value] = true
		ok := false
		for _, want := range known {
			ok = ok || want == k.Value
		}
		if !ok {
			where := "the file"
			if field != "" {
				where = field
			}
			return nil, errAt(k, name, "unknown field (%s has: %s)", where, strings.Join(known, ", "))
		}
		if v.Kind == yaml.AliasNode {
			return nil, errAt(v, name, "aliases are not allowed")
		}
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out, nil
}

func join(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// knownKey is one key a mapping may have, with what decodes and checks its value (name is
// the key's full path, for errors).
type knownKey struct {
	key    string
	decode func(v *yaml.Node, name string) error
}

// decodeMapping decodes the mapping n at path section key by key, in the file's order; a key
// outside known is refused with the list of those that are.
func decodeMapping(n *yaml.Node, section string, known ...knownKey) error {
	names := make([]string, len(known))
	for i, k := range known {
		names[i] = k.key
	}
	fs, err := fields(n, section, names...)
	if err != nil {
		return err
	}
	for _, kv := range fs {
		k := known[slices.Index(names, kv[0].Value)]
		if err := k.decode(kv[1], join(section, k.key)); err != nil {
			return err
		}
	}
	return nil
}

func walk(root *yaml.Node, c *Config) error {
	hasVersion := false
	err := decodeMapping(root, "",
		knownKey{"version", func(v *yaml.Node, name string) error {
			hasVersion = true
			if err := integer(v, name, &c.Version); err != nil {
				return err
			}
			if c.Version != Version {
				return errAt(v, name, "%d is not a known version (this build reads version: %d)", c.Version, Version)
			}
			return nil
		}},
		knownKey{"ci", func(v *yaml.Node, _ string) error { return walkCI(v, &c.CI) }},
		knownKey{"agent", func(v *yaml.Node, _ string) error { return walkAgent(v, &c.Agent) }},
		knownKey{"overrides", func(v *yaml.Node, name string) error {
			return decodeMapping(v, name, knownKey{"ci_command", func(v *yaml.Node, name string) error {
				return boolean(v, name, &c.Overrides.CICommand)
			}})
		}},
	)
	if err != nil {
		return err
	}
	if !hasVersion {
		return errAt(root, "version", "missing: the file must start with version: %d", Version)
	}
	return nil
}

func walkCI(n *yaml.Node, ci *CI) error {
	return decodeMapping(n, "ci",
		knownKey{"command", func(v *yaml.Node, name string) error {
			if err := str(v, name, &ci.Command); err != nil {
				return err
			}
			switch {
			case strings.TrimSpace(ci.Command) == "":
				return errAt(v, name, "must not be empty (leave it out to use the ticket's)")
			case len(ci.Command) > maxCommandBytes:
				return errAt(v, name, "is %d bytes, more than %d", len(ci.Command), maxCommandBytes)
			case strings.ContainsRune(ci.Command, 0):
				return errAt(v, name, "must not contain a NUL byte")
			}
			return nil
		}},
		knownKey{"timeout", func(v *yaml.Node, name string) error { return duration(v, name, &ci.Timeout) }},
	)
}

func walkAgent(n *yaml.Node, a *Agent) error {
	return decodeMapping(n, "agent",
		knownKey{"editable", func(v *yaml.Node, name string) error { return globs(v, name, &a.Editable) }},
		knownKey{"max_steps", positiveInteger(&a.MaxSteps)},
		knownKey{"max_tokens", positiveInteger(&a.MaxTokens)},
		knownKey{"max_cost_usd", func(v *yaml.Node, name string) error {
			if v.Kind != yaml.ScalarNode || (v.Tag != "!!float" && v.Tag != "!!int") || v.Decode(&a.MaxCostUSD) != nil {
				return errAt(v, name, "must be a number of US dollars (e.g. 0.5), got %s", show(v))
			}
			if !(a.MaxCostUSD > 0) || math.IsInf(a.MaxCostUSD, 0) {
				return errAt(v, name, "must be a positive number, got %s", show(v))
			}
			return nil
		}},
		knownKey{"max_duration", func(v *yaml.Node, name string) error { return duration(v, name, &a.MaxDuration) }},
	)
}

// positiveInteger decodes an integer above zero into out.
func positiveInteger[T int | int64](out *T) func(v *yaml.Node, name string) error {
	return func(v *yaml.Node, name string) error {
		if err := integer(v, name, out); err != nil {
			return err
		}
		if *out <= 0 {
			return errAt(v, name, "must be a positive integer, got %d", *out)
		}
		return nil
	}
}

// show is a node's value as the error quotes it (clipped).
func show(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		s := n.Value
		if len(s) > 60 {
			s = s[:60] + "…"
		}
		return fmt.Sprintf("%q", s)
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "an alias"
}

func str(n *yaml.Node, field string, out *string) error {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return errAt(n, field, "must be a string, got %s", show(n))
	}
	*out = n.Value
	return nil
}

func boolean(n *yaml.Node, field string, out *bool) error {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		return errAt(n, field, "must be true or false, got %s", show(n))
	}
	return n.Decode(out)
}

func integer[T int | int64](n *yaml.Node, field string, out *T) error {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		return errAt(n, field, "must be an integer, got %s", show(n))
	}
	if err := n.Decode(out); err != nil {
		return errAt(n, field, "must be an integer, got %s", show(n))
	}
	return nil
}

func duration(n *yaml.Node, field string, out *time.Duration) error {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return errAt(n, field, "must be a duration with a unit (e.g. 90s, 10m), got %s", show(n))
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return errAt(n, field, "must be a duration with a unit (e.g. 90s, 10m), got %s", show(n))
	}
	if d <= 0 {
		return errAt(n, field, "must be positive, got %s", show(n))
	}
	*out = d
	return nil
}

func globs(n *yaml.Node, field string, out *[]string) error {
	if n.Kind != yaml.SequenceNode {
		return errAt(n, field, "must be a list of globs (e.g. [\"src/**\", \"docs/*.md\"]), got %s", show(n))
	}
	if len(n.Content) == 0 {
		return errAt(n, field, "is empty, which would allow no edit at all; leave it out to allow every path")
	}
	if len(n.Content) > maxEditable {
		return errAt(n, field, "has %d globs, more than %d", len(n.Content), maxEditable)
	}
	for i, g := range n.Content {
		name := fmt.Sprintf("%s[%d]", field, i)
		var s string
		if err := str(g, name, &s); err != nil {
			return err
		}
		if msg := checkGlob(s); msg != "" {
			return errAt(g, name, "%q %s", clipGlob(s), msg)
		}
		*out = append(*out, s)
	}
	return nil
}

func clipGlob(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// checkGlob is why g cannot be an editable glob ("" when it can).
func checkGlob(g string) string {
	switch {
	case g == "":
		return "is empty"
	case len(g) > maxGlobBytes:
		return fmt.Sprintf("is longer than %d bytes", maxGlobBytes)
	case strings.ContainsAny(g, "\\\x00"):
		return "must use / between directories and hold no backslash or NUL"
	case strings.HasPrefix(g, "/"):
		return "must be relative to the repository root (no leading /)"
	case !doublestar.ValidatePattern(g):
		return "is not a valid glob (doublestar syntax: *, **, ?, [abc], {a,b})"
	}
	for _, seg := range strings.Split(g, "/") {
		if seg == ".." || seg == "." {
			return "must not contain . or .. segments"
		}
		if seg == ".git" {
			return "must not name .git"
		}
	}
	return ""
}

// Loaded is what Load found.
type Loaded struct {
	// Config is the parsed file; nil when the repository has none.
	Config *Config
	// Source is "file" or "default" (no file).
	Source string
	// SHA256 (hex) and Size are the raw file's; empty and 0 without one.
	SHA256 string
	Size   int
}

// Load reads dir/.ticketflow.yml. A missing file is no error (Source "default"); a file
// that is not regular, a symbolic link leaving dir, a file above MaxBytes or a file Parse
// refuses is.
func Load(dir string) (Loaded, error) {
	p := filepath.Join(dir, FileName)
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return Loaded{Source: "default"}, nil
	}
	if err != nil {
		return Loaded{}, &Error{Msg: "cannot be read: " + cause(err)}
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		if err := insideDir(dir, p); err != nil {
			return Loaded{}, err
		}
		if fi, err = os.Stat(p); err != nil {
			return Loaded{}, &Error{Msg: "is a symbolic link to nothing readable"}
		}
	}
	if !fi.Mode().IsRegular() {
		return Loaded{}, &Error{Msg: "is not a regular file"}
	}
	f, err := os.Open(p)
	if err != nil {
		return Loaded{}, &Error{Msg: "cannot be read: " + cause(err)}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return Loaded{}, &Error{Msg: "cannot be read: " + err.Error()}
	}
	if len(data) > MaxBytes {
		return Loaded{}, &Error{Msg: fmt.Sprintf("the file is more than the %d bytes allowed", MaxBytes)}
	}
	c, err := Parse(data)
	if err != nil {
		return Loaded{}, err
	}
	sum := sha256.Sum256(data)
	return Loaded{Config: c, Source: "file", SHA256: hex.EncodeToString(sum[:]), Size: len(data)}, nil
}

// cause is err without the path os puts in front (the clone's location is no business of the
// run's log).
func cause(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// insideDir refuses a symbolic link p whose target is outside dir.
func insideDir(dir, p string) error {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return &Error{Msg: "cannot resolve the repository directory"}
	}
	target, err := filepath.EvalSymlinks(p)
	if err != nil {
		return &Error{Msg: "is a symbolic link to nothing readable"}
	}
	rel, err := filepath.Rel(root, target)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return &Error{Msg: "is a symbolic link pointing outside the repository: refused"}
	}
	if rel == ".git" || strings.HasPrefix(rel, ".git"+string(filepath.Separator)) {
		return &Error{Msg: "is a symbolic link into .git: refused"}
	}
	return nil
}

// cleanRel is p as a clean "/"-separated path relative to the root.
func cleanRel(p string) string {
	return strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(p)), "/")
}
