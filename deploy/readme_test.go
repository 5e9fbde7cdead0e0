package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeLinks checks that every relative link of deploy/README.md names a file or directory
// that exists, and that the files the README calls out by path in code spans exist too.
func TestReadmeLinks(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	links := regexp.MustCompile(`\]\(([^)\s]+)\)`).FindAllStringSubmatch(string(raw), -1)
	if len(links) == 0 {
		t.Fatal("README.md has no links: the pattern no longer matches")
	}
	for _, m := range links {
		target := m[1]
		if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
			continue
		}
		target, _, _ = strings.Cut(target, "#")
		if _, err := os.Stat(filepath.FromSlash(target)); err != nil {
			t.Errorf("README.md links to %s, which does not exist", m[1])
		}
	}
	// `path/file.ext` in code spans that look like repository paths.
	for _, m := range regexp.MustCompile("`((?:\\.\\./|k8s/|postgres/|nginx/|deploy/)[\\w./-]+\\.(?:yaml|sql|sh|conf|go|md))`").FindAllStringSubmatch(string(raw), -1) {
		p := m[1]
		if rest, ok := strings.CutPrefix(p, "deploy/"); ok {
			p = rest
		}
		if _, err := os.Stat(filepath.FromSlash(p)); err != nil {
			t.Errorf("README.md names %s, which does not exist", m[1])
		}
	}
}
