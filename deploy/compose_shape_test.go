package deploy

import (
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestComposeRequiresSecrets checks that compose refuses to start without each secret, naming
// it, instead of falling back to a value published in the repository.
func TestComposeRequiresSecrets(t *testing.T) {
	for missing := range composeSecrets {
		var env []string
		for k, v := range composeSecrets {
			if k != missing {
				env = append(env, k+"="+v)
			}
		}
		_, err := loadComposeEnv(env)
		if err == nil {
			t.Errorf("docker-compose.yml loads without %s", missing)
			continue
		}
		if !strings.Contains(err.Error(), missing) {
			t.Errorf("without %s: error %q does not name it", missing, err)
		}
	}
}

// secretVar matches the names of variables that hold a credential.
var secretVar = regexp.MustCompile(`(SECRET|PASSWORD|TOKEN|_API_KEY|PRIVATE_KEY)`)

// TestComposeNoSecretDefaults reads docker-compose.yml as text: every interpolation of a secret
// variable is ${VAR:?message} (required), or ${VAR:-} (optional, empty) for the LLM keys.
func TestComposeNoSecretDefaults(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	// Optional credentials: empty turns their feature off (the LLM providers: the demo one;
	// the forge tokens and webhook secret: no pull requests, no review webhooks).
	optional := map[string]bool{"ANTHROPIC_API_KEY": true, "OPENAI_API_KEY": true, "TICKETFLOW_FORGE_TOKENS": true, "TICKETFLOW_FORGE_WEBHOOK_SECRET": true}
	found := 0
	for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+)([^}]*)\}`).FindAllStringSubmatch(string(raw), -1) {
		name, rest := m[1], m[2]
		if !secretVar.MatchString(name) {
			continue
		}
		found++
		switch {
		case strings.HasPrefix(rest, ":?"):
		case optional[name] && rest == ":-":
		default:
			t.Errorf("docker-compose.yml: ${%s%s}: a secret must be required (${%[1]s:?message}), never defaulted", name, rest)
		}
	}
	if found == 0 {
		t.Fatal("no secret interpolation found: the pattern no longer matches docker-compose.yml")
	}
}

// TestComposeTopology checks the multi-instance shape and the network boundaries.
func TestComposeTopology(t *testing.T) {
	p := loadCompose(t, nil, "tools")
	for svc, n := range replicas {
		s, _ := p.GetService(svc)
		if s.Deploy == nil || s.Deploy.Replicas == nil || *s.Deploy.Replicas != n {
			t.Errorf("%s: deploy.replicas %v, want %d", svc, s.Deploy, n)
		}
		// A fixed name or a shared instance id would make the replicas one: compose cannot
		// scale a container_name, and replicas sharing TICKETFLOW_INSTANCE_ID would share run
		// leases and Kafka static group membership. Without it the processor names itself
		// after its container's host name.
		if s.ContainerName != "" {
			t.Errorf("%s: container_name %q prevents replicas", svc, s.ContainerName)
		}
		if v, ok := s.Environment["TICKETFLOW_INSTANCE_ID"]; ok {
			t.Errorf("%s: TICKETFLOW_INSTANCE_ID=%v would be shared by every replica", svc, ptrOr(v))
		}
		for _, port := range s.Ports {
			t.Errorf("%s publishes port %v: replicas cannot share a host port; web is the entry point", svc, port)
		}
	}

	// Kafka and PostgreSQL have no authentication on their listeners: loopback only.
	for _, svc := range []string{"kafka", "postgres"} {
		s, _ := p.GetService(svc)
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s published on %q:%s; bind it to 127.0.0.1", svc, port.HostIP, port.Published)
			}
		}
	}

	backend, ok := p.Networks["backend"]
	if !ok || !backend.Internal {
		t.Fatal("the backend network must exist and be internal (no route out)")
	}
	// Who may sit on which network.
	wantNetworks := map[string][]string{
		"kafka":      {"backend", "host-ports"},
		"postgres":   {"backend", "host-ports"},
		"kafka-init": {"backend"},
		"migrate":    {"backend"},
		"db-roles":   {"backend"},
		"cli":        {"backend"},
		"command":    {"backend", "edge"},
		"notifier":   {"backend", "edge"},
		"processor":  {"backend", "egress"},
		"projector":  {"backend"},
		"web":        {"edge"},
		"prometheus": {"backend", "observability"},
		"grafana":    {"backend", "observability"},
		"jaeger":     {"backend", "observability"},
	}
	for svc, want := range wantNetworks {
		s, err := p.GetService(svc)
		if err != nil {
			t.Errorf("%s: %v", svc, err)
			continue
		}
		var got []string
		for name := range s.Networks {
			got = append(got, name)
		}
		if !slices.Equal(sorted(got), want) {
			t.Errorf("%s is on networks %v, want %v", svc, sorted(got), want)
		}
	}
	// host-ports exists only so that Docker can publish on 127.0.0.1: nothing else joins it.
	for name, s := range p.Services {
		if _, on := s.Networks["host-ports"]; on && name != "kafka" && name != "postgres" {
			t.Errorf("%s is on host-ports", name)
		}
	}

	// The services trust forwarding headers from the edge network (nginx) only.
	edge := p.Networks["edge"]
	if len(edge.Ipam.Config) != 1 {
		t.Fatalf("edge network: want one fixed subnet (TICKETFLOW_TRUSTED_PROXIES names it), got %+v", edge.Ipam)
	}
	subnet := edge.Ipam.Config[0].Subnet
	prefix, err := netip.ParsePrefix(subnet)
	if err != nil || !prefix.Addr().IsPrivate() {
		t.Errorf("edge subnet %q: want a private CIDR (%v)", subnet, err)
	}
	for _, svc := range []string{"command", "notifier"} {
		s, _ := p.GetService(svc)
		if got := env(t, s, "TICKETFLOW_TRUSTED_PROXIES"); got != subnet {
			t.Errorf("%s: TICKETFLOW_TRUSTED_PROXIES %q, want the edge subnet %s", svc, got, subnet)
		}
	}
	moved := loadCompose(t, []string{"TICKETFLOW_EDGE_SUBNET=10.77.0.0/24"})
	if cmd, _ := moved.GetService("command"); env(t, cmd, "TICKETFLOW_TRUSTED_PROXIES") != "10.77.0.0/24" || moved.Networks["edge"].Ipam.Config[0].Subnet != "10.77.0.0/24" {
		t.Error("TICKETFLOW_EDGE_SUBNET must move the edge network and the trusted proxies together")
	}

	// The processor's CI sandbox is bwrap, which needs namespaces: the least that allows them,
	// and no capability.
	proc, _ := p.GetService("processor")
	if env(t, proc, "TICKETFLOW_CI_SANDBOX") != "bwrap" {
		t.Errorf("processor: TICKETFLOW_CI_SANDBOX %q, want bwrap", env(t, proc, "TICKETFLOW_CI_SANDBOX"))
	}
	if want := []string{"apparmor=unconfined", "seccomp=unconfined", "systempaths=unconfined"}; !slices.Equal(sorted(proc.SecurityOpt), want) {
		t.Errorf("processor security_opt %v, want %v", proc.SecurityOpt, want)
	}
	for name, s := range p.Services {
		if len(s.CapAdd) > 0 || s.Privileged {
			t.Errorf("%s: cap_add %v privileged %v; no service needs more privilege", name, s.CapAdd, s.Privileged)
		}
		if name != "processor" && len(s.SecurityOpt) > 0 {
			t.Errorf("%s: security_opt %v; only the processor's sandbox needs any", name, s.SecurityOpt)
		}
	}
}

func ptrOr(v *string) string {
	if v == nil {
		return "<nil>"
	}
	return *v
}
