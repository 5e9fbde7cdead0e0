package gitrepo

import (
	"context"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/ticketflow/ticketflow/libs/repourl"
)

type publicDNS struct{}

func (publicDNS) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
}

// ssh connects to the address the policy checked (HostName), looks the host key up under the
// name (HostKeyAlias), uses no proxy, and offers no key outside the allow-list: what
// `ssh -G` (the configuration ssh would use, without connecting) reports for our command.
func TestSSHIsPinnedToTheCheckedAddress(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no ssh client")
	}
	policy, err := repourl.New(repourl.Config{Allowlist: []string{"git.example.com/acme/*"}}, publicDNS{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for url, creds := range map[string]bool{"git@git.example.com:acme/widgets.git": true, "ssh://git@git.example.com:2222/other/repo": false} {
		target, err := policy.Check(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("sh", "-c", sshCommand(&target)+` -G "$0"`, "git.example.com").CombinedOutput()
		if err != nil {
			t.Fatalf("ssh -G: %v\n%s", err, out)
		}
		cfg := strings.Split(string(out), "\n")
		for _, want := range []string{"hostname 93.184.216.34", "hostkeyalias git.example.com", "batchmode yes", "checkhostip no"} {
			if !slices.Contains(cfg, want) {
				t.Errorf("%s: ssh -G lacks %q", url, want)
			}
		}
		noKeys := slices.Contains(cfg, "pubkeyauthentication no") || slices.Contains(cfg, "pubkeyauthentication false")
		if noKeys == creds || slices.Contains(cfg, "identityagent none") == creds {
			t.Errorf("%s: credentials %v, but ssh config:\n%s", url, creds, out)
		}
		for _, line := range cfg {
			if strings.HasPrefix(line, "proxycommand ") || strings.HasPrefix(line, "proxyjump ") {
				t.Errorf("%s: %s", url, line)
			}
		}

		g := New(Config{Policy: policy})
		cmd, err := g.command(ctx, invocation{cwd: t.TempDir(), target: &target, op: "clone", args: []string{"clone"}})
		if err != nil {
			t.Fatal(err)
		}
		env := strings.Join(cmd.Env, "\n")
		if !strings.Contains(env, "GIT_SSH_COMMAND="+sshCommand(&target)) || !slices.Contains(cmd.Env, "GIT_ALLOW_PROTOCOL=ssh") {
			t.Errorf("%s: env\n%s", url, env)
		}
		if strings.Contains(strings.Join(cmd.Args, " "), "curloptResolve") {
			t.Errorf("%s: args %v", url, cmd.Args)
		}
	}
}

// Local commands allow no protocol at all; network commands only their URL's scheme.
func TestProtocolsPerCommand(t *testing.T) {
	policy, err := repourl.New(repourl.Config{}, publicDNS{})
	if err != nil {
		t.Fatal(err)
	}
	g := New(Config{Policy: policy, Token: "tok"})
	local, err := g.command(context.Background(), invocation{repo: t.TempDir(), op: "checkout", args: []string{"checkout"}})
	if err != nil {
		t.Fatal(err)
	}
	env, args := strings.Join(local.Env, "\n"), strings.Join(local.Args, " ")
	for _, want := range []string{"GIT_ALLOW_PROTOCOL=none", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0", "HOME="} {
		if !strings.Contains(env, want) {
			t.Errorf("local env lacks %s:\n%s", want, env)
		}
	}
	for _, want := range []string{"core.hooksPath=/dev/null", "core.fsmonitor=false", "submodule.recurse=false", "protocol.file.allow=never", "safe.directory="} {
		if !strings.Contains(args, want) {
			t.Errorf("local args lack %s: %s", want, args)
		}
	}
	target, err := policy.Check(context.Background(), "https://git.example.com/acme/widgets")
	if err != nil {
		t.Fatal(err)
	}
	remote, err := g.command(context.Background(), invocation{cwd: t.TempDir(), target: &target, op: "clone", args: []string{"clone"}})
	if err != nil {
		t.Fatal(err)
	}
	env, args = strings.Join(remote.Env, "\n"), strings.Join(remote.Args, " ")
	if !strings.Contains(env, "GIT_ALLOW_PROTOCOL=https") || !strings.Contains(args, "http.curloptResolve=git.example.com:443:93.184.216.34") ||
		!strings.Contains(args, "http.followRedirects=false") || strings.Contains(env, "extraHeader") {
		t.Errorf("https clone outside the allow-list:\nargs %s\nenv %s", args, env)
	}
}
