package config_test

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/ticketflow/ticketflow/libs/goldentest"
)

var update = flag.Bool("update", false, "rewrite .env.example from the Config structs")

// variable is one environment variable read through an env-tagged struct field.
type variable struct {
	name, def, doc, file string
	// getenv: only seen read directly (os.Getenv), not as a Config field.
	getenv bool
}

// TestEnvExampleListsEveryVariable keeps .env.example equal to what the code reads: every
// env-tagged field of every Config struct in the repository, with its default and the first
// line of its doc comment. `go test ./libs/config -run EnvExample -update` rewrites it.
func TestEnvExampleListsEveryVariable(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	vars := collect(t, root)
	if len(vars) < 20 {
		t.Fatalf("found only %d variables under %s: is the scan broken?", len(vars), root)
	}
	want := render(vars)
	goldentest.Check(t, filepath.Join(root, ".env.example"), want, *update, "cd libs && go test ./config -run EnvExample -update")
}

func collect(t *testing.T, root string) []variable {
	t.Helper()
	seen := map[string]variable{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "node_modules", ".git", "frontend", ".data", "bin":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		ast.Inspect(f, func(n ast.Node) bool {
			if name, ok := getenvLiteral(n); ok && !strings.Contains(name, "TEST") {
				if _, dup := seen[name]; !dup {
					seen[name] = variable{name: name, file: filepath.Dir(rel), getenv: true}
				}
				return true
			}
			field, ok := n.(*ast.Field)
			if !ok || field.Tag == nil {
				return true
			}
			tag, err := strconv.Unquote(field.Tag.Value)
			if err != nil {
				return true
			}
			st := reflect.StructTag(tag)
			name := st.Get("env")
			if name == "" {
				return true
			}
			v := variable{name: name, def: st.Get("envDefault"), file: filepath.Dir(rel)}
			if field.Doc != nil {
				v.doc = strings.TrimSpace(strings.SplitN(field.Doc.Text(), "\n", 2)[0])
			}
			if old, dup := seen[name]; dup && !old.getenv {
				if old.def != v.def {
					t.Errorf("%s has two defaults: %q (%s) and %q (%s)", name, old.def, old.file, v.def, v.file)
				}
				return true
			}
			seen[name] = v
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]variable, 0, len(seen))
	for _, v := range seen {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].file != out[j].file {
			return out[i].file < out[j].file
		}
		return out[i].name < out[j].name
	})
	return out
}

// getenvLiteral matches os.Getenv("NAME") and os.LookupEnv("NAME") of a ticketflow variable.
func getenvLiteral(n ast.Node) (string, bool) {
	call, ok := n.(*ast.CallExpr)
	if !ok || len(call.Args) != 1 {
		return "", false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || (sel.Sel.Name != "Getenv" && sel.Sel.Name != "LookupEnv") {
		return "", false
	}
	lit, ok := call.Args[0].(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	name, err := strconv.Unquote(lit.Value)
	if err != nil || !strings.HasPrefix(name, "TICKETFLOW_") {
		return "", false
	}
	return name, true
}

func render(vars []variable) string {
	var b strings.Builder
	b.WriteString("# Every environment variable ticketflow reads, with its default (generated from the\n")
	b.WriteString("# Config structs: cd libs && go test ./config -run EnvExample -update). An empty value\n")
	b.WriteString("# means unset; secrets have no default and must be provided.\n")
	file := ""
	for _, v := range vars {
		if v.file != file {
			file = v.file
			fmt.Fprintf(&b, "\n# --- %s\n", file)
		}
		if v.doc != "" {
			fmt.Fprintf(&b, "# %s\n", v.doc)
		}
		fmt.Fprintf(&b, "%s=%s\n", v.name, v.def)
	}
	b.WriteString(otelVariables)
	return b.String()
}

// otelVariables are the OpenTelemetry SDK's own variables (read by the SDK, not by a Config
// struct), listed so that .env.example still names everything that changes behaviour.
const otelVariables = `
# --- OpenTelemetry (libs/telemetry; the SDK reads the standard OTEL_* variables)
# Where traces are exported over OTLP/HTTP; unset = no exporter (tracing off).
OTEL_EXPORTER_OTLP_ENDPOINT=
# The service name on spans; empty = the process's (command, processor, projector, notifier, ticketflow).
OTEL_SERVICE_NAME=
# Sampler (always_on, traceidratio, parentbased_traceidratio, ...). Default: parentbased_always_on.
OTEL_TRACES_SAMPLER=
# true turns the SDK off whatever else is set.
OTEL_SDK_DISABLED=
`
