package repoconfig

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const full = `version: 1
ci:
  command: make test
  timeout: 5m
agent:
  editable: ["src/**", "docs/*.md"]
  max_steps: 10
  max_tokens: 50000
  max_cost_usd: 0.5
  max_duration: 3m
overrides:
  ci_command: true
`

func TestParseReadsEveryField(t *testing.T) {
	c, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{Version: 1, CI: CI{Command: "make test", Timeout: 5 * time.Minute},
		Agent:     Agent{Editable: []string{"src/**", "docs/*.md"}, MaxSteps: 10, MaxTokens: 50000, MaxCostUSD: 0.5, MaxDuration: 3 * time.Minute},
		Overrides: Overrides{CICommand: true}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
	if c, err := Parse([]byte("version: 1\n")); err != nil || !reflect.DeepEqual(c, &Config{Version: 1}) {
		t.Errorf("minimal file: %+v, %v", c, err)
	}
	if c, err := Parse([]byte("version: 1\nagent:\n  max_cost_usd: 2\n")); err != nil || c.Agent.MaxCostUSD != 2 {
		t.Errorf("an integer cost: %+v, %v", c, err)
	}
}

// Every refusal names the field and the line.
func TestParseRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		line      int
		field     string
		msg       string
	}{
		{"empty", "", 1, "version", "empty"},
		{"no version", "ci:\n  command: make\n", 1, "version", "missing"},
		{"version 2", "version: 2\n", 1, "version", "not a known version"},
		{"version string", "version: \"1\"\n", 1, "version", "must be an integer"},
		{"unknown top field", "version: 1\nfoo: bar\n", 2, "foo", "unknown field"},
		{"unknown ci field", "version: 1\nci:\n  command: make\n  shell: bash\n", 4, "ci.shell", "unknown field"},
		{"unknown agent field", "version: 1\nagent:\n  max_step: 3\n", 3, "agent.max_step", "unknown field"},
		{"unknown override", "version: 1\noverrides:\n  max_steps: true\n", 3, "overrides.max_steps", "unknown field"},
		{"duplicate key", "version: 1\nci:\n  command: a\n  command: b\n", 4, "ci.command", "defined twice"},
		{"ci not a mapping", "version: 1\nci: make\n", 2, "ci", "must be a mapping"},
		{"root a list", "- 1\n", 1, "", "must be a mapping"},
		{"command a number", "version: 1\nci:\n  command: 42\n", 3, "ci.command", "must be a string"},
		{"command empty", "version: 1\nci:\n  command: \"  \"\n", 3, "ci.command", "must not be empty"},
		{"command too long", "version: 1\nci:\n  command: " + strings.Repeat("x", 2001) + "\n", 3, "ci.command", "more than 2000"},
		{"timeout no unit", "version: 1\nci:\n  timeout: 300\n", 3, "ci.timeout", "duration with a unit"},
		{"timeout bad", "version: 1\nci:\n  timeout: soon\n", 3, "ci.timeout", "duration with a unit"},
		{"timeout negative", "version: 1\nci:\n  timeout: -5m\n", 3, "ci.timeout", "must be positive"},
		{"steps zero", "version: 1\nagent:\n  max_steps: 0\n", 3, "agent.max_steps", "positive integer"},
		{"steps float", "version: 1\nagent:\n  max_steps: 2.5\n", 3, "agent.max_steps", "must be an integer"},
		{"steps huge", "version: 1\nagent:\n  max_steps: 99999999999999999999\n", 3, "agent.max_steps", "must be an integer"},
		{"tokens negative", "version: 1\nagent:\n  max_tokens: -1\n", 3, "agent.max_tokens", "positive integer"},
		{"cost string", "version: 1\nagent:\n  max_cost_usd: cheap\n", 3, "agent.max_cost_usd", "number of US dollars"},
		{"cost nan", "version: 1\nagent:\n  max_cost_usd: .nan\n", 3, "agent.max_cost_usd", "positive number"},
		{"cost inf", "version: 1\nagent:\n  max_cost_usd: .inf\n", 3, "agent.max_cost_usd", "positive number"},
		{"duration int", "version: 1\nagent:\n  max_duration: 60\n", 3, "agent.max_duration", "duration with a unit"},
		{"editable string", "version: 1\nagent:\n  editable: src/**\n", 3, "agent.editable", "must be a list"},
		{"editable empty", "version: 1\nagent:\n  editable: []\n", 3, "agent.editable", "allow no edit"},
		{"editable absolute", "version: 1\nagent:\n  editable:\n    - src/**\n    - /etc/*\n", 5, "agent.editable[1]", "relative"},
		{"editable dotdot", "version: 1\nagent:\n  editable: [\"src/../../x\"]\n", 3, "agent.editable[0]", ".. segments"},
		{"editable git", "version: 1\nagent:\n  editable: [\".git/**\"]\n", 3, "agent.editable[0]", ".git"},
		{"editable bad glob", "version: 1\nagent:\n  editable: [\"src/[a\"]\n", 3, "agent.editable[0]", "not a valid glob"},
		{"editable number", "version: 1\nagent:\n  editable: [1]\n", 3, "agent.editable[0]", "must be a string"},
		{"override not bool", "version: 1\noverrides:\n  ci_command: yes\n", 3, "overrides.ci_command", "true or false"},
		{"alias", "version: 1\nci: &c\n  command: a\nagent: *c\n", 4, "agent", "aliases"},
		{"syntax", "version: 1\nci:\n  command: [a\n", 2, "", "not valid YAML"},
		{"tab indent", "version: 1\nci:\n\tcommand: a\n", 3, "", "not valid YAML"},
		{"two documents", "version: 1\n---\nversion: 1\n", 2, "", "second YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("err %v, want an *Error", err)
			}
			if pe.Line != tc.line || pe.Field != tc.field || !strings.Contains(pe.Msg, tc.msg) {
				t.Errorf("got line %d field %q msg %q (%v); want line %d field %q msg containing %q", pe.Line, pe.Field, pe.Msg, err, tc.line, tc.field, tc.msg)
			}
			if want := "line "; tc.line > 0 && !strings.Contains(err.Error(), want) {
				t.Errorf("%q names no line", err)
			}
		})
	}
	if _, err := Parse([]byte("version: 1\n#" + strings.Repeat("x", MaxBytes))); err == nil || !strings.Contains(err.Error(), "more than the 65536") {
		t.Errorf("oversized file: %v", err)
	}
}

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if l, err := Load(dir); err != nil || l.Source != "default" || l.Config != nil {
		t.Errorf("no file: %+v, %v", l, err)
	}
	write(t, dir, FileName, full)
	l, err := Load(dir)
	if err != nil || l.Source != "file" || l.Config.CI.Command != "make test" || l.Size != len(full) || len(l.SHA256) != 64 {
		t.Errorf("file: %+v, %v", l, err)
	}
	write(t, dir, FileName, "version: 1\nbogus: 1\n")
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), ".ticketflow.yml: line 2: bogus: unknown field") {
		t.Errorf("invalid file: %v", err)
	}
	write(t, dir, FileName, strings.Repeat("#", MaxBytes+1))
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "more than the 65536 bytes") {
		t.Errorf("oversized file: %v", err)
	}

	// A symbolic link inside the clone is followed; one leaving it is refused.
	inside := t.TempDir()
	write(t, inside, "conf.yml", "version: 1\nci:\n  command: ./ci.sh\n")
	if err := os.Symlink("conf.yml", filepath.Join(inside, FileName)); err != nil {
		t.Fatal(err)
	}
	if l, err := Load(inside); err != nil || l.Config.CI.Command != "./ci.sh" {
		t.Errorf("link inside: %+v, %v", l, err)
	}
	outside := t.TempDir()
	secret := write(t, t.TempDir(), "secret.yml", "version: 1\n")
	if err := os.Symlink(secret, filepath.Join(outside, FileName)); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(outside); err == nil || !strings.Contains(err.Error(), "pointing outside the repository") {
		t.Errorf("link outside: %v", err)
	}
	relOut := t.TempDir()
	if err := os.Symlink("../../../../../../../../etc/hostname", filepath.Join(relOut, FileName)); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(relOut); err == nil {
		t.Errorf("relative link outside: no error")
	}
	dangling := t.TempDir()
	if err := os.Symlink("nowhere.yml", filepath.Join(dangling, FileName)); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dangling); err == nil || !strings.Contains(err.Error(), "symbolic link to nothing") {
		t.Errorf("dangling link: %v", err)
	}
	asDir := t.TempDir()
	if err := os.Mkdir(filepath.Join(asDir, FileName), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(asDir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
}

var operator = Limits{CITimeout: 10 * time.Minute, MaxSteps: 40, MaxTokens: 2_000_000, MaxCostUSD: 5, MaxDuration: 20 * time.Minute}

func TestResolve(t *testing.T) {
	parse := func(doc string) *Config {
		c, err := Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name   string
		cfg    *Config
		ticket string
		check  func(e Effective) bool
	}{
		{"no file: the ticket's command and the operator's limits", nil, "make ci", func(e Effective) bool {
			return e.Source == "default" && e.CICommand == "make ci" && e.CICommandFrom == FromTicket && e.MaxSteps == 40 &&
				e.CITimeout == 10*time.Minute && e.MaxCostUSD == 5 && len(e.Notes) == 0 && e.CheckEditable("anything/at/all") == nil
		}},
		{"the repository's command when the ticket has none", parse("version: 1\nci:\n  command: ./ci.sh\n"), "", func(e Effective) bool {
			return e.CICommand == "./ci.sh" && e.CICommandFrom == FromRepository && len(e.Notes) == 0
		}},
		{"the same command is no override", parse("version: 1\nci:\n  command: ./ci.sh\n"), "./ci.sh", func(e Effective) bool {
			return e.CICommandFrom == FromRepository && len(e.Notes) == 0
		}},
		{"a ticket override refused", parse("version: 1\nci:\n  command: ./ci.sh\n"), "rm -rf /", func(e Effective) bool {
			return e.CICommand == "./ci.sh" && e.CICommandFrom == FromRepository && len(e.Notes) == 1 &&
				strings.Contains(e.Notes[0], "not used") && strings.Contains(e.Notes[0], "overrides.ci_command")
		}},
		{"a ticket override allowed", parse("version: 1\nci:\n  command: ./ci.sh\noverrides:\n  ci_command: true\n"), "make quick", func(e Effective) bool {
			return e.CICommand == "make quick" && e.CICommandFrom == FromTicket && e.CICommandOverridable && len(e.Notes) == 0
		}},
		{"no repository command: the ticket's", parse("version: 1\nagent:\n  max_steps: 5\n"), "make", func(e Effective) bool {
			return e.CICommand == "make" && e.CICommandFrom == FromTicket && e.MaxSteps == 5 && e.Source == "file"
		}},
		{"lower limits apply", parse(full), "", func(e Effective) bool {
			return e.MaxSteps == 10 && e.MaxTokens == 50000 && e.MaxCostUSD == 0.5 && e.MaxDuration == 3*time.Minute && e.CITimeout == 5*time.Minute && len(e.Notes) == 0
		}},
		{"higher limits are refused", parse("version: 1\nci:\n  timeout: 2h\nagent:\n  max_steps: 1000\n  max_tokens: 999999999\n  max_cost_usd: 100\n  max_duration: 24h\n"), "", func(e Effective) bool {
			return e.MaxSteps == 40 && e.MaxTokens == 2_000_000 && e.MaxCostUSD == 5 && e.MaxDuration == 20*time.Minute && e.CITimeout == 10*time.Minute &&
				len(e.Notes) == 5 && strings.Contains(e.Notes[1], "agent.max_steps 1000 is above the operator's TICKETFLOW_AGENT_MAX_STEPS=40")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := Resolve(tc.cfg, Ticket{CICommand: tc.ticket}, operator)
			if !tc.check(e) {
				t.Errorf("%+v", e)
			}
		})
	}
	if e := Resolve(&Config{Version: 1, Agent: Agent{MaxSteps: 7}}, Ticket{}, Limits{}); e.MaxSteps != 7 {
		t.Errorf("an unbounded operator limit takes the repository's: %+v", e)
	}
}

func TestCheckEditable(t *testing.T) {
	e := Effective{Editable: []string{"src/**", "docs/*.md", "Makefile"}}
	for p, ok := range map[string]bool{
		"src/a.go": true, "src/deep/er/b.go": true, "./src/c.go": true, "docs/x.md": true, "Makefile": true,
		"docs/sub/x.md": false, "README.md": false, "srcx/a.go": false, "makefile": false, ".ticketflow.yml": false, "ci.sh": false,
	} {
		err := e.CheckEditable(p)
		if (err == nil) != ok {
			t.Errorf("%s: %v, want editable %v", p, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), "is not editable") {
			t.Errorf("%s: %v", p, err)
		}
	}
	all := Effective{Editable: []string{"**"}}
	if all.CheckEditable("any/file") != nil || all.CheckEditable(FileName) == nil {
		t.Errorf("with ** every path but the configuration is editable")
	}
}

// FuzzParse: any input is parsed or refused with an *Error, never a panic; what is parsed
// is valid by the package's own rules.
func FuzzParse(f *testing.F) {
	for _, s := range []string{full, "version: 1\n", "", "version: 1\nci: &a\n  command: x\nagent: *a\n", "version: 1\n---\n",
		"version: 1\nagent:\n  editable: [\"{a,b}/**\", \"[!x]*\"]\n", "[1, 2]", "version: 1\nci: {command: \"x\", timeout: 1h}\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("%T %v", err, err)
			}
			return
		}
		if c.Version != Version || c.Agent.MaxSteps < 0 || c.Agent.MaxTokens < 0 || c.Agent.MaxCostUSD < 0 || c.CI.Timeout < 0 || c.Agent.MaxDuration < 0 {
			t.Fatalf("accepted %+v", c)
		}
		for _, g := range c.Agent.Editable {
			if checkGlob(g) != "" {
				t.Fatalf("accepted glob %q", g)
			}
		}
		e := Resolve(c, Ticket{CICommand: "x"}, operator)
		if e.MaxSteps > operator.MaxSteps || e.MaxTokens > operator.MaxTokens || e.MaxCostUSD > operator.MaxCostUSD ||
			e.MaxDuration > operator.MaxDuration || e.CITimeout > operator.CITimeout {
			t.Fatalf("raised a limit: %+v", e)
		}
		_ = e.CheckEditable("src/a.go")
	})
}
