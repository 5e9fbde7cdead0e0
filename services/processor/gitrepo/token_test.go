package gitrepo

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ticketflow/ticketflow/libs/gittest"
	"github.com/ticketflow/ticketflow/libs/proctest"
	"github.com/ticketflow/ticketflow/libs/repourl"
	"github.com/ticketflow/ticketflow/services/processor/redact"
)

const httpBackend = "/usr/lib/git-core/git-http-backend"

// forge is a smart-HTTP git server over TLS (git http-backend behind net/http/cgi) that
// records the Authorization header of every request, by repository.
type forge struct {
	srv  *httptest.Server
	root string
	ca   string

	mu   sync.Mutex
	auth map[string][]string // "/owner/repo.git" → Authorization headers seen ("" when none)
}

func newForge(t *testing.T, repos ...string) *forge {
	t.Helper()
	if _, err := os.Stat(httpBackend); err != nil {
		t.Skip("git http-backend not installed")
	}
	f := &forge{root: t.TempDir(), auth: map[string][]string{}}
	for _, r := range repos {
		_, bare := gittest.Origin(t, map[string]string{"README.md": "hello\n"})
		dst := filepath.Join(f.root, r)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := exec.Command("cp", "-a", bare, dst).Run(); err != nil {
			t.Fatal(err)
		}
		gittest.Git(t, dst, "config", "http.receivepack", "true")
	}
	backend := &cgi.Handler{Path: httpBackend, Env: []string{"GIT_PROJECT_ROOT=" + f.root, "GIT_HTTP_EXPORT_ALL=1"}}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repo := r.URL.Path
		if i := strings.Index(repo, ".git/"); i >= 0 {
			repo = repo[:i+4]
		}
		f.mu.Lock()
		f.auth[repo] = append(f.auth[repo], r.Header.Get("Authorization"))
		f.mu.Unlock()
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	f.ca = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f.ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *forge) port() string {
	_, port, _ := net.SplitHostPort(f.srv.Listener.Addr().String())
	return port
}

func (f *forge) headers(repo string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.auth[repo]...)
}

// pinnedDNS answers every name with the forge's address: the system resolver (offline here)
// would not, so a successful clone also proves git used the pinned address.
type pinnedDNS struct{}

func (pinnedDNS) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// The token reaches only allow-listed repositories, as an Authorization header; the others
// are cloned anonymously, and an empty allow-list sends it nowhere.
func TestTokenSentOnlyToAllowlistedRepositories(t *testing.T) {
	const token = "ghp_gitsafe_test_token"
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+token))
	f := newForge(t, "acme/widgets.git", "other/repo.git")
	// httptest's certificate names example.com; the name reaches 127.0.0.1 only through the
	// policy's allowance (TICKETFLOW_REPOSITORY_ALLOWED_NETS) and the pinned address.
	policy, err := repourl.New(repourl.Config{Allowlist: []string{"example.com:" + f.port() + "/acme/*"}, AllowedNets: []string{"127.0.0.0/8"}}, pinnedDNS{})
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	g := New(Config{Policy: policy, Token: token, CAFile: f.ca, Redactor: redact.New(token), Log: slog.New(slog.NewTextHandler(&log, nil))})
	ctx := context.Background()
	base := "https://example.com:" + f.port() + "/"

	acme := filepath.Join(t.TempDir(), "acme")
	if _, err := g.Sync(ctx, base+"acme/widgets.git", "main", acme); err != nil {
		t.Fatalf("allow-listed clone: %v\n%s", err, log.String())
	}
	if _, err := g.Commit(ctx, acme, "ticketflow/t/1", "change"); err != nil {
		t.Fatal(err)
	}
	if err := g.Push(ctx, acme, "ticketflow/t/1"); err != nil {
		t.Fatalf("push: %v\n%s", err, log.String())
	}
	seen := f.headers("/acme/widgets.git")
	if len(seen) == 0 {
		t.Fatal("no request reached the forge")
	}
	withToken := 0
	for _, h := range seen {
		if h == want {
			withToken++
		} else if h != "" {
			t.Errorf("unexpected Authorization %q", h)
		}
	}
	if withToken == 0 {
		t.Errorf("the allow-listed repository never got the token: %q", seen)
	}
	if out, err := exec.Command("git", "-C", filepath.Join(f.root, "acme/widgets.git"), "rev-parse", "--verify", "refs/heads/ticketflow/t/1").CombinedOutput(); err != nil {
		t.Errorf("run branch not pushed: %s", out)
	}

	other := filepath.Join(t.TempDir(), "other")
	if _, err := g.Sync(ctx, base+"other/repo.git", "main", other); err != nil {
		t.Fatalf("public clone of a repository outside the allow-list: %v\n%s", err, log.String())
	}
	for _, h := range f.headers("/other/repo.git") {
		if h != "" {
			t.Errorf("repository outside the allow-list got Authorization %q", h)
		}
	}

	open, err := repourl.New(repourl.Config{AllowedNets: []string{"127.0.0.0/8"}}, pinnedDNS{})
	if err != nil {
		t.Fatal(err)
	}
	before := len(f.headers("/acme/widgets.git"))
	if _, err := New(Config{Policy: open, Token: token, CAFile: f.ca}).Sync(ctx, base+"acme/widgets.git", "main", filepath.Join(t.TempDir(), "w")); err != nil {
		t.Fatal(err)
	}
	for _, h := range f.headers("/acme/widgets.git")[before:] {
		if h != "" {
			t.Errorf("empty allow-list: the token was sent (%q)", h)
		}
	}
	if strings.Contains(log.String(), token) {
		t.Error("the token reached the server log")
	}
}

// Without an allowance, a name resolving to loopback is refused before git runs; a closed
// port and an open non-git port fail with the same generic error, git's output only in the
// server log.
func TestUnreachableRepositoriesLookAlike(t *testing.T) {
	ctx := context.Background()
	strict, err := repourl.New(repourl.Config{}, pinnedDNS{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Policy: strict}).Sync(ctx, "https://example.com/o/r.git", "main", filepath.Join(t.TempDir(), "w")); !errors.Is(err, repourl.ErrRefused) || strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("loopback name: %v", err)
	}

	dev, err := repourl.New(repourl.Config{AllowPrivate: true}, pinnedDNS{})
	if err != nil {
		t.Fatal(err)
	}
	notGit := httptest.NewTLSServer(http.NotFoundHandler())
	defer notGit.Close()
	closed := proctest.FreeAddr(t) // nothing listens there
	var messages []string
	for _, addr := range []string{notGit.Listener.Addr().String(), closed} {
		var log bytes.Buffer
		g := New(Config{Policy: dev, Log: slog.New(slog.NewTextHandler(&log, nil))})
		_, port, _ := net.SplitHostPort(addr)
		_, err := g.Sync(ctx, "https://example.com:"+port+"/o/r.git", "main", filepath.Join(t.TempDir(), "w"))
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("%s: %v", addr, err)
		}
		var ce *CommandError
		if !errors.As(err, &ce) || ce.Detail == "" || !strings.Contains(log.String(), "git command failed") {
			t.Errorf("%s: detail not logged: %v\n%s", addr, err, log.String())
		}
		messages = append(messages, err.Error())
	}
	if messages[0] != messages[1] {
		t.Errorf("open and closed ports tell apart: %q vs %q", messages[0], messages[1])
	}
}
