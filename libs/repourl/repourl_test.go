package repourl

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeDNS maps host names to addresses; unknown names do not resolve.
type fakeDNS map[string][]string

func (f fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range f[host] {
		out = append(out, netip.MustParseAddr(s))
	}
	if len(out) == 0 {
		return nil, errors.New("no such host " + host)
	}
	return out, nil
}

var dns = fakeDNS{
	"github.com":         {"140.82.121.4"},
	"gitlab.example.com": {"93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"},
	"localhost":          {"127.0.0.1", "::1"},
	"internal.corp":      {"10.0.0.5"},
	"metadata.rebind":    {"93.184.216.34", "169.254.169.254"},
	"cgnat.example":      {"100.64.1.1"},
	"mapped.example":     {"::ffff:192.168.1.1"},
	"nat64.example":      {"64:ff9b::7f00:1"},
	"sixtofour.example":  {"2002:0a00:0001::1"},
	"ula.example":        {"fd12:3456::1"},
	"ll6.example":        {"fe80::1"},
	"mcast.example":      {"ff02::1"},
	"zero.example":       {"0.0.0.0"},
}

func policy(t *testing.T, cfg Config) *Policy {
	t.Helper()
	p, err := New(cfg, dns)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckRefusesEveryUnsafeClass(t *testing.T) {
	p := policy(t, Config{})
	ctx := context.Background()
	for _, c := range []struct{ url, why string }{
		{"", "empty"},
		{"-uhttps://x", "start with '-'"},
		{"--upload-pack=touch /tmp/pwned", "start with '-'"},
		{"ext::sh -c touch% /tmp/pwned", "whitespace"},
		{"ext::sh", "transport helpers"},
		{"fd::17", "transport helpers"},
		{"http://github.com/o/r", "scheme"},
		{"git://github.com/o/r", "scheme"},
		{"HTTPS://github.com/o/r", "scheme"},
		{"/srv/repo.git", "local paths"},
		{"./repo", "local paths"},
		{"https://user:token@github.com/o/r", "credentials"},
		{"https://token@github.com/o/r", "credentials"},
		{"ssh://git:pw@github.com/o/r", "credentials"},
		{"https://github.com/o/r\n", "whitespace"},
		{"https://github.com/o/r\x7f", "control"},
		{"https://github.com/o/r ", "whitespace"},
		{"https://gïthub.com/o/r", "non-ASCII"},
		{"https:///nohost", "missing host"},
		{"https://github.com", "missing repository path"},
		{"https://github.com/", "missing repository path"},
		{"https://github.com/o/../../r", "'..'"},
		{"https://github.com/o/%2e%2e/r", "'%'"},
		{"https://github.com/o/r?x=1", "'?'"},
		{"https://github.com/-o/r", "start with '-'"},
		{"https://-github.com/o/r", "invalid host"},
		{"https://github.com:0/o/r", "invalid port"},
		{"https://github.com:65536/o/r", "invalid port"},
		{"https://github.com:0443/o/r", "invalid port"},
		{"https://github.com:/o/r", "empty port"},
		{"https://github.com./o/r", "invalid host"},
		{"ssh://-oProxyCommand=evil/r", "invalid host"},
		{"ssh://-oProxyCommand=evil@github.com/r", "ssh user"},
		{"git@-oProxyCommand=x:repo", "invalid host"},
		{"-oProxyCommand=x@github.com:repo", "start with '-'"},
		{"x@github.com:-repo", "start with '-'"},
		{"git@github.com:o/r;id", "path may contain"},
		{"git@github.com", "user@host:path"},
		// Non-public hosts, literal and resolved.
		{"https://127.0.0.1/o/r", "loopback"},
		{"https://127.0.0.1:6379/o/r", "loopback"},
		{"ssh://git@127.0.0.1:5432/o/r", "loopback"},
		{"git@127.0.0.1:o/r", "loopback"},
		{"https://localhost/o/r", "non-public"},
		{"https://10.1.2.3/o/r", "private"},
		{"https://172.16.0.1/o/r", "private"},
		{"https://192.168.0.1/o/r", "private"},
		{"https://169.254.169.254/latest/meta-data", "link-local"},
		{"https://100.64.0.1/o/r", "CGNAT"},
		{"https://0.0.0.0/o/r", "unspecified"},
		{"https://224.0.0.1/o/r", "multicast"},
		{"https://255.255.255.255/o/r", "broadcast"},
		{"https://internal.corp/o/r", "non-public"},
		{"https://metadata.rebind/o/r", "non-public"},
		{"https://cgnat.example/o/r", "non-public"},
		{"https://zero.example/o/r", "non-public"},
		{"https://nowhere.example/o/r", "does not resolve"},
		// IPv6 forms.
		{"https://[::1]/o/r", "loopback"},
		{"https://[::]/o/r", "unspecified"},
		{"https://[::ffff:127.0.0.1]/o/r", "loopback"},
		{"https://[::ffff:7f00:1]/o/r", "loopback"},
		{"https://[::ffff:169.254.169.254]/o/r", "link-local"},
		{"https://[::127.0.0.1]/o/r", "reserved"},
		{"https://[fc00::1]/o/r", "private"},
		{"https://[fd00::1]:8443/o/r", "private"},
		{"https://[fe80::1]/o/r", "link-local"},
		{"https://[fe80::1%25eth0]/o/r", "'%'"},
		{"https://[ff02::1]/o/r", "multicast"},
		{"https://[64:ff9b::a9fe:a9fe]/o/r", "link-local"},
		{"https://[2002:7f00:1::1]/o/r", "loopback"},
		{"git@[::1]:o/r", "loopback"},
		{"https://[127.0.0.1]/o/r", "invalid IPv6"},
		{"https://[::1/o/r", "unterminated"},
		{"https://mapped.example/o/r", "non-public"},
		{"https://nat64.example/o/r", "non-public"},
		{"https://sixtofour.example/o/r", "non-public"},
		{"https://ula.example/o/r", "non-public"},
		{"https://ll6.example/o/r", "non-public"},
		{"https://mcast.example/o/r", "non-public"},
		// IPv4 numbers curl and git accept.
		{"https://2130706433/o/r", "four decimal numbers"},
		{"https://0x7f000001/o/r", "four decimal numbers"},
		{"https://0x7f.0.0.1/o/r", "four decimal numbers"},
		{"https://0177.0.0.1/o/r", "four decimal numbers"},
		{"https://127.1/o/r", "four decimal numbers"},
		{"https://127.0.0.01/o/r", "four decimal numbers"},
		{"git@2130706433:o/r", "four decimal numbers"},
		{"ssh://git@017700000001/o/r", "four decimal numbers"},
		// file:// without a root.
		{"file:///tmp/repo.git", "disabled"},
	} {
		_, err := p.Check(ctx, c.url)
		if err == nil || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("Check(%q) = %v, want a refusal mentioning %q", c.url, err, c.why)
		}
	}
}

func TestRefusalsNeverNameResolvedAddresses(t *testing.T) {
	_, err := policy(t, Config{}).Check(context.Background(), "https://internal.corp/o/r")
	var e *Error
	if !errors.As(err, &e) || strings.Contains(e.Error(), "10.0.0.5") || !strings.Contains(e.Detail, "10.0.0.5") {
		t.Errorf("error %q detail %q", err, e.Detail)
	}
}

func TestCheckAcceptsAndNormalises(t *testing.T) {
	p := policy(t, Config{})
	for raw, want := range map[string]string{
		"https://github.com/o/r.git":         "https://github.com/o/r.git",
		"https://GitHub.com/o/r/":            "https://github.com/o/r",
		"https://github.com:443/o/r":         "https://github.com:443/o/r",
		"ssh://git@github.com/o/r.git":       "ssh://git@github.com/o/r.git",
		"ssh://github.com:2222/~me/r":        "ssh://github.com:2222/~me/r",
		"git@github.com:o/r.git":             "git@github.com:o/r.git",
		"git@github.com:/srv/r.git":          "git@github.com:/srv/r.git",
		"https://140.82.121.4/o/r":           "https://140.82.121.4/o/r",
		"https://gitlab.example.com/g/sub/r": "https://gitlab.example.com/g/sub/r",
		"https://[2606:4700::6810:84e5]/o/r": "https://[2606:4700::6810:84e5]/o/r",
		"git@[2606:4700::6810:84e5]:o/r":     "git@[2606:4700::6810:84e5]:o/r",
	} {
		tgt, err := p.Check(context.Background(), raw)
		if err != nil {
			t.Errorf("Check(%q): %v", raw, err)
			continue
		}
		if got := tgt.URL.String(); got != want {
			t.Errorf("Check(%q) = %s, want %s", raw, got, want)
		}
		if len(tgt.Addrs) == 0 || tgt.Credentials {
			t.Errorf("Check(%q): addrs %v credentials %v", raw, tgt.Addrs, tgt.Credentials)
		}
	}
}

func TestDevelopmentAllowances(t *testing.T) {
	ctx := context.Background()
	private := policy(t, Config{AllowPrivate: true})
	for _, u := range []string{"https://127.0.0.1:8443/o/r", "https://localhost/o/r", "https://[::1]/o/r", "https://10.1.2.3/o/r", "https://internal.corp/o/r"} {
		if _, err := private.Check(ctx, u); err != nil {
			t.Errorf("AllowPrivate: %s refused: %v", u, err)
		}
	}
	for _, u := range []string{"https://0.0.0.0/o/r", "https://224.0.0.1/o/r", "https://2130706433/o/r"} {
		if _, err := private.Check(ctx, u); err == nil {
			t.Errorf("AllowPrivate: %s accepted", u)
		}
	}
	nets := policy(t, Config{AllowedNets: []string{"10.0.0.0/24", "::1/128"}})
	for u, ok := range map[string]bool{"https://internal.corp/o/r": true, "https://10.0.1.5/o/r": false, "https://[::1]/o/r": true,
		"https://[::ffff:10.0.0.9]/o/r": true, "https://127.0.0.1/o/r": false} {
		if _, err := nets.Check(ctx, u); (err == nil) != ok {
			t.Errorf("AllowedNets: %s: %v, want ok=%v", u, err, ok)
		}
	}
	if _, err := New(Config{AllowedNets: []string{"10.0.0.0/33"}}, dns); err == nil {
		t.Error("bad CIDR accepted")
	}
	if _, err := New(Config{RemovedAllowFile: true}, dns); err == nil || !strings.Contains(err.Error(), "TICKETFLOW_FILE_REPO_ROOT") {
		t.Errorf("TICKETFLOW_ALLOW_FILE_REPOS=true: %v", err)
	}
}

func TestFileRepositoriesOnlyUnderTheRoot(t *testing.T) {
	base := t.TempDir()
	root, outside, work := filepath.Join(base, "repos"), filepath.Join(base, "other"), filepath.Join(base, "repos", "work")
	for _, d := range []string{filepath.Join(root, "a.git"), filepath.Join(outside, "b.git"), filepath.Join(work, "ticket-1")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(outside, "b.git"), filepath.Join(root, "escape.git")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "a.git"), filepath.Join(outside, "in.git")); err != nil {
		t.Fatal(err)
	}
	p := policy(t, Config{FileRoot: root})
	if err := p.Forbid(work); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tgt, err := p.Check(ctx, "file://"+root+"/a.git")
	if err != nil || tgt.URL.String() != "file://"+filepath.Join(p.FileRoot(), "a.git") {
		t.Fatalf("inside the root: %v %v", tgt.URL, err)
	}
	if tgt, err := p.Check(ctx, "file://"+outside+"/in.git"); err != nil || tgt.URL.Path != filepath.Join(p.FileRoot(), "a.git") {
		t.Errorf("symlink into the root: %v %v (git must get the resolved path)", tgt.URL, err)
	}
	for _, u := range []string{
		"file://" + outside + "/b.git",
		"file://" + root + "/../other/b.git",
		"file://" + root + "/a.git/../../other/b.git",
		"file://" + root + "/escape.git",
		"file://" + root + "/missing.git",
		"file://" + work + "/ticket-1",
		"file://" + root,
		"file://" + root + "/%2e%2e/other/b.git",
		"file://localhost" + root + "/a.git",
		"file:" + root + "/a.git",
		"file://" + root + "/-a.git",
		"file:///etc",
	} {
		if _, err := p.Check(ctx, u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}

func TestAllowlist(t *testing.T) {
	p := policy(t, Config{Allowlist: []string{"github.com/acme/*", "gitlab.example.com/team/*", "github.com/other/widgets", "github.com:8443/x/*"}})
	ctx := context.Background()
	for u, want := range map[string]bool{
		"https://github.com/acme/widgets.git":      true,
		"https://GITHUB.com/Acme/Widgets":          true,
		"git@github.com:acme/widgets.git":          true,
		"ssh://git@github.com/acme/tools":          true,
		"https://github.com:443/acme/widgets":      true,
		"https://gitlab.example.com/team/sub/repo": true,
		"https://github.com/other/widgets.git":     true,
		"https://github.com:8443/x/y":              true,
		"https://github.com/acme":                  false,
		"https://github.com/acmeevil/widgets":      false,
		"https://github.com/other/widgets-fork":    false,
		"https://github.com/victim/secret":         false,
		"https://github.com:8443/acme/widgets":     false,
		"ssh://git@github.com:2222/acme/widgets":   false,
		"https://gitlab.example.com/teamx/repo":    false,
		"https://github.com/x/y":                   false,
	} {
		tgt, err := p.Check(ctx, u)
		if err != nil {
			t.Errorf("%s: %v", u, err)
			continue
		}
		if tgt.Credentials != want {
			t.Errorf("%s: credentials %v, want %v", u, tgt.Credentials, want)
		}
		if err := p.Admit(ctx, u); (err == nil) != want {
			t.Errorf("Admit(%s) = %v, want ok=%v", u, err, want)
		}
	}
	for _, bad := range []string{"github.com", "github.com/*", "github.com/a*/b", "github.com/*/b", "-x.com/a", "github.com/../a"} {
		if _, err := New(Config{Allowlist: []string{bad}}, dns); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
	empty := policy(t, Config{})
	if tgt, err := empty.Check(ctx, "https://github.com/acme/widgets"); err != nil || tgt.Credentials {
		t.Errorf("no allow-list: %v credentials=%v", err, tgt.Credentials)
	}
	if err := empty.Admit(ctx, "https://github.com/acme/widgets"); err != nil {
		t.Errorf("no allow-list: public repository refused: %v", err)
	}
}

func TestAdmitToleratesUnresolvedHostsButNotPrivateOnes(t *testing.T) {
	p := policy(t, Config{})
	ctx := context.Background()
	if err := p.Admit(ctx, "https://not-yet.example/o/r"); err != nil {
		t.Errorf("unresolved host refused at creation: %v", err)
	}
	if err := p.Admit(ctx, "https://localhost/o/r"); err == nil {
		t.Error("localhost admitted")
	}
	if _, err := p.Check(ctx, "https://not-yet.example/o/r"); err == nil {
		t.Error("unresolved host accepted by Check")
	}
}

// Whatever Check accepts is a URL git cannot read as an option, carries no credentials or
// whitespace, and reaches only public addresses; its String() parses back to itself.
func FuzzRepositoryURL(f *testing.F) {
	for _, s := range []string{"https://github.com/a/b", "git@github.com:a/b", "ssh://git@[::1]:22/x", "https://2130706433/x",
		"file:///tmp/x", "ssh://-oProxyCommand=x/y", "https://[::ffff:127.0.0.1]/x", "https://localhost/x", "git@h:-x"} {
		f.Add(s)
	}
	p, err := New(Config{}, fakeDNS{"github.com": {"140.82.121.4"}, "localhost": {"127.0.0.1"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tgt, err := p.Check(context.Background(), s)
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("%q: error %v is not a refusal", s, err)
			}
			return
		}
		out := tgt.URL.String()
		if strings.HasPrefix(out, "-") || strings.ContainsAny(out, " \t\r\n%\\") || strings.Contains(tgt.URL.User, ":") ||
			strings.HasPrefix(tgt.URL.Host, "-") || strings.HasPrefix(tgt.URL.Path, "-") || strings.Contains("/"+tgt.URL.Path+"/", "/../") {
			t.Fatalf("%q accepted as %q", s, out)
		}
		for _, a := range tgt.Addrs {
			if classOf(a) != "" {
				t.Fatalf("%q accepted with address %s (%s)", s, a, classOf(a))
			}
		}
		back, err := Parse(out)
		if err != nil || back != tgt.URL {
			t.Fatalf("%q: String() %q parses to %+v, %v", s, out, back, err)
		}
	})
}
