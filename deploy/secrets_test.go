package deploy

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ticketflow/ticketflow/libs/auth"
	yamlv3 "go.yaml.in/yaml/v3"
)

// literalSecrets collects every secret value written in deploy/ and docker-compose.yml: Secret
// manifests (stringData and data), secretGenerator literals, defaults of secret variables in
// compose, and passwords inside connection URLs. Each value is returned with where it was found.
func literalSecrets(t *testing.T) map[string]string {
	t.Helper()
	found := map[string]string{}
	add := func(where, v string) {
		if v == "" {
			return
		}
		found[v] = where
		if u, err := url.Parse(v); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok {
				found[pw] = where + " (URL password)"
			}
		}
	}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ext := filepath.Ext(path)
		if ext != ".yaml" && ext != ".yml" {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dec := yamlv3.NewDecoder(bytes.NewReader(raw))
		for {
			var doc map[string]any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if doc["kind"] == "Secret" {
				for k, v := range asMap(doc["stringData"]) {
					add(path+" "+k, asString(v))
				}
				for k, v := range asMap(doc["data"]) {
					add(path+" "+k+" (base64)", asString(v))
				}
			}
			if gens, ok := doc["secretGenerator"].([]any); ok {
				for _, g := range gens {
					for _, lit := range asSlice(asMap(g)["literals"]) {
						k, v, _ := strings.Cut(asString(lit), "=")
						add(path+" secretGenerator "+k, v)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+):?[-=]([^}]*)\}`).FindAllStringSubmatch(string(raw), -1) {
		if secretVar.MatchString(m[1]) {
			add("docker-compose.yml ${"+m[1]+"}", m[2])
		}
	}
	for _, m := range regexp.MustCompile(`postgres://[^\s"']+`).FindAllString(string(raw), -1) {
		if u, err := url.Parse(m); err == nil && u.User != nil {
			if pw, _ := u.User.Password(); pw != "" && !strings.HasPrefix(pw, "${") {
				found[pw] = "docker-compose.yml URL password"
			}
		}
	}
	return found
}

// TestLiteralSecretsRefused: whatever secret value the repository's deployment files spell out
// is one libs/auth refuses as TICKETFLOW_JWT_SECRET, so a copied template cannot become a key.
func TestLiteralSecretsRefused(t *testing.T) {
	found := literalSecrets(t)
	if len(found) == 0 {
		t.Fatal("no literal secret found: the templates (k8s/base/secret.yaml, k8s/infra/postgres.yaml) should hold refused placeholders")
	}
	for v, where := range found {
		if _, err := auth.NewVerifier(v); err == nil {
			t.Errorf("%s: %q is accepted by auth.NewVerifier; a template value must be a refused placeholder", where, v)
		}
	}
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}
