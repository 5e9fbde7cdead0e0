package deploy

import (
	"bytes"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	yamlv3 "go.yaml.in/yaml/v3"
)

// observabilityServices are compose's Prometheus, Grafana and Jaeger, each with the image it
// runs and the port of its UI (published on 127.0.0.1 only).
var observabilityServices = map[string]struct{ image, port string }{
	"prometheus": {"prom/prometheus", "9090"},
	"grafana":    {"grafana/grafana", "3000"},
	"jaeger":     {"jaegertracing/jaeger", "16686"},
}

// pinnedTag matches an image tag that names a release (v1.2.3, 1.2.3): never latest or a
// moving major.
var pinnedTag = regexp.MustCompile(`^v?\d+\.\d+\.\d+$`)

// prometheusConfig is the part of prometheus.yml compose uses, decoded strictly (a field this
// struct lacks is a typo or a feature the test does not know).
type prometheusConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		ScrapeTimeout      string `yaml:"scrape_timeout"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName      string `yaml:"job_name"`
		MetricsPath  string `yaml:"metrics_path"`
		DNSSDConfigs []struct {
			Names           []string `yaml:"names"`
			Type            string   `yaml:"type"`
			Port            int      `yaml:"port"`
			RefreshInterval string   `yaml:"refresh_interval"`
		} `yaml:"dns_sd_configs"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func decodeStrictYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yamlv3.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s does not decode strictly: %v", path, err)
	}
}

// bindMount returns the service's bind mount at target (sources are absolute: the project is
// loaded with resolved paths).
func bindMount(t *testing.T, s types.ServiceConfig, target string) *types.ServiceVolumeConfig {
	t.Helper()
	for i, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			return &s.Volumes[i]
		}
	}
	t.Errorf("%s: no bind mount at %s (volumes %+v)", s.Name, target, s.Volumes)
	return nil
}

// checkBind fails unless s mounts repository path src (relative to the root) read-only at target.
func checkBind(t *testing.T, s types.ServiceConfig, src, target string) {
	t.Helper()
	v := bindMount(t, s, target)
	if v == nil {
		return
	}
	want, err := filepath.Abs(filepath.Join(repoRoot, filepath.FromSlash(src)))
	if err != nil {
		t.Fatal(err)
	}
	if v.Source != want {
		t.Errorf("%s: %s is mounted from %s, want %s", s.Name, target, v.Source, want)
	}
	if !v.ReadOnly {
		t.Errorf("%s: mount of %s at %s should be read-only", s.Name, src, target)
	}
	if !fileExists(want) {
		t.Errorf("%s mounts %s, which does not exist", s.Name, src)
	}
}

// flagValue returns --name=value from a command line.
func flagValue(cmd []string, name string) string {
	for _, a := range cmd {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// TestComposeObservability checks Prometheus, Grafana and Jaeger in docker-compose.yml: pinned
// images, UIs on loopback only, Prometheus scraping every replica of every Go service on the
// port it listens on with the alert rules loaded, Grafana's provisioning and dashboard mounted,
// and the services exporting traces to Jaeger.
func TestComposeObservability(t *testing.T) {
	p := loadCompose(t, nil)
	for name, want := range observabilityServices {
		s, err := p.GetService(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		repo, tag, _ := strings.Cut(s.Image, ":")
		if repo != want.image || !pinnedTag.MatchString(tag) {
			t.Errorf("%s: image %q, want %s pinned to a release", name, s.Image, want.image)
		}
		if len(s.Ports) != 1 || s.Ports[0].HostIP != "127.0.0.1" || portString(s.Ports[0].Target) != want.port || s.Ports[0].Published != want.port {
			t.Errorf("%s: ports %+v, want 127.0.0.1:%s:%s only", name, s.Ports, want.port, want.port)
		}
		// backend to reach the services (it is internal), observability to be published.
		var nets []string
		for n := range s.Networks {
			nets = append(nets, n)
		}
		if !slices.Equal(sorted(nets), []string{"backend", "observability"}) {
			t.Errorf("%s is on networks %v, want [backend observability]", name, sorted(nets))
		}
	}
	if n, ok := p.Networks["observability"]; !ok || n.Internal {
		t.Error("the observability network must exist and not be internal (its UIs are published)")
	}

	// Prometheus: its configuration and rules are the repository's files.
	prom, _ := p.GetService("prometheus")
	cfgPath := flagValue(prom.Command, "config.file")
	if cfgPath == "" {
		t.Fatalf("prometheus: command %v has no --config.file", prom.Command)
	}
	checkBind(t, prom, "deploy/"+prometheusFile, cfgPath)
	if !hasNamedVolume(prom, "prometheus-data", flagValue(prom.Command, "storage.tsdb.path")) {
		t.Errorf("prometheus: the TSDB path %q is not on the prometheus-data volume", flagValue(prom.Command, "storage.tsdb.path"))
	}
	var cfg prometheusConfig
	decodeStrictYAML(t, prometheusFile, &cfg)
	if len(cfg.RuleFiles) != 1 {
		t.Fatalf("prometheus.yml rule_files %v, want the one alerts.yaml", cfg.RuleFiles)
	}
	checkBind(t, prom, "deploy/"+alertsFile, cfg.RuleFiles[0])

	// One job per Go service, named after it (the job label the dashboard groups by), finding
	// every replica through Docker's DNS, on the port the service listens on.
	jobs := map[string]int{}
	for i, sc := range cfg.ScrapeConfigs {
		if _, dup := jobs[sc.JobName]; dup {
			t.Errorf("prometheus.yml: job %s twice", sc.JobName)
		}
		jobs[sc.JobName] = i
	}
	for svc, port := range goServices {
		i, ok := jobs[svc]
		if !ok {
			t.Errorf("prometheus.yml: no job %s", svc)
			continue
		}
		sc := cfg.ScrapeConfigs[i]
		s, _ := p.GetService(svc)
		_, listen, err := net.SplitHostPort(env(t, s, "TICKETFLOW_HTTP_ADDR"))
		if err != nil || listen != port {
			t.Errorf("%s: TICKETFLOW_HTTP_ADDR port %q, want %s", svc, listen, port)
		}
		if sc.MetricsPath != "/metrics" {
			t.Errorf("job %s: metrics_path %q, want /metrics (libs/httpx MountOps)", svc, sc.MetricsPath)
		}
		if len(sc.StaticConfigs) != 0 || len(sc.DNSSDConfigs) != 1 {
			t.Errorf("job %s: want one dns_sd_config (one target per replica), got %+v", svc, sc)
			continue
		}
		dns := sc.DNSSDConfigs[0]
		if !slices.Equal(dns.Names, []string{svc}) || dns.Type != "A" || portString(uint32(dns.Port)) != listen {
			t.Errorf("job %s: dns_sd %+v, want names [%s] type A port %s", svc, dns, svc, listen)
		}
		if _, on := s.Networks["backend"]; !on {
			t.Errorf("%s is not on backend: Prometheus cannot reach it", svc)
		}
		// Traces go to Jaeger's OTLP/HTTP receiver, named after the service.
		if got := env(t, s, "OTEL_EXPORTER_OTLP_ENDPOINT"); got != "http://jaeger:4318" {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT %q, want http://jaeger:4318", svc, got)
		}
		if got := env(t, s, "OTEL_EXPORTER_OTLP_PROTOCOL"); got != "http/protobuf" {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_PROTOCOL %q, want http/protobuf (port 4318)", svc, got)
		}
		if got := env(t, s, "OTEL_SERVICE_NAME"); got != svc {
			t.Errorf("%s: OTEL_SERVICE_NAME %q", svc, got)
		}
	}
	httpx, err := os.ReadFile(filepath.Join(repoRoot, "libs", "httpx", "app.go"))
	if err != nil || !strings.Contains(string(httpx), `app.Get("/metrics"`) {
		t.Errorf("libs/httpx/app.go no longer serves /metrics (%v): update prometheus.yml and the ServiceMonitors", err)
	}
	// The web app links a run's trace to Jaeger's UI as the host publishes it.
	if cmd, _ := p.GetService("command"); env(t, cmd, "TICKETFLOW_TRACE_UI_URL") != "http://localhost:16686/trace/{trace_id}" {
		t.Errorf("command: TICKETFLOW_TRACE_UI_URL %q, want Jaeger's trace page", env(t, cmd, "TICKETFLOW_TRACE_UI_URL"))
	}
	off := loadCompose(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT="})
	if cmd, _ := off.GetService("command"); env(t, cmd, "OTEL_EXPORTER_OTLP_ENDPOINT") != "" {
		t.Error("an empty OTEL_EXPORTER_OTLP_ENDPOINT must turn trace export off, not fall back to jaeger")
	}

	// Grafana: provisioning and the dashboard from the repository.
	graf, _ := p.GetService("grafana")
	checkBind(t, graf, "deploy/observability/grafana/provisioning", "/etc/grafana/provisioning")
	var dashMount *types.ServiceVolumeConfig
	for i, v := range graf.Volumes {
		if v.Type == types.VolumeTypeBind && strings.HasSuffix(v.Source, filepath.FromSlash(dashboardFile)) {
			dashMount = &graf.Volumes[i]
		}
	}
	if dashMount == nil {
		t.Fatalf("grafana does not mount %s", dashboardFile)
	}
	checkBind(t, graf, "deploy/"+dashboardFile, dashMount.Target)
	if !hasNamedVolume(graf, "grafana-data", "/var/lib/grafana") {
		t.Error("grafana: /var/lib/grafana is not on the grafana-data volume")
	}
	var providers struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name                  string `yaml:"name"`
			Folder                string `yaml:"folder"`
			Type                  string `yaml:"type"`
			DisableDeletion       bool   `yaml:"disableDeletion"`
			AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
			UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
			Options               struct {
				Path                      string `yaml:"path"`
				FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	decodeStrictYAML(t, "observability/grafana/provisioning/dashboards/ticketflow.yaml", &providers)
	if providers.APIVersion != 1 || len(providers.Providers) != 1 || providers.Providers[0].Type != "file" {
		t.Fatalf("dashboard provisioning: %+v, want one file provider", providers)
	}
	if dir := providers.Providers[0].Options.Path; dir != filepath.ToSlash(filepath.Dir(dashMount.Target)) {
		t.Errorf("the dashboard provider reads %s, the dashboard is mounted at %s", dir, dashMount.Target)
	}
	var datasources struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name      string         `yaml:"name"`
			UID       string         `yaml:"uid"`
			Type      string         `yaml:"type"`
			Access    string         `yaml:"access"`
			URL       string         `yaml:"url"`
			IsDefault bool           `yaml:"isDefault"`
			Editable  bool           `yaml:"editable"`
			JSONData  map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	decodeStrictYAML(t, "observability/grafana/provisioning/datasources/prometheus.yaml", &datasources)
	wantDS := map[string]string{"prometheus": "prometheus:9090", "jaeger": "jaeger:16686"}
	for _, ds := range datasources.Datasources {
		want, ok := wantDS[ds.Type]
		if !ok {
			t.Errorf("datasource %s: unexpected type %s", ds.Name, ds.Type)
			continue
		}
		delete(wantDS, ds.Type)
		u, err := url.Parse(ds.URL)
		if err != nil || u.Host != want {
			t.Errorf("datasource %s: url %q, want the compose service %s", ds.Name, ds.URL, want)
		}
		svc, _, _ := strings.Cut(want, ":")
		if _, err := p.GetService(svc); err != nil {
			t.Errorf("datasource %s points at %s: %v", ds.Name, svc, err)
		}
		if ds.Type == "prometheus" && (!ds.IsDefault || ds.UID != "prometheus") {
			t.Errorf("datasource %s: want the default, uid prometheus (the dashboard's datasource variable)", ds.Name)
		}
	}
	for typ := range wantDS {
		t.Errorf("no %s datasource", typ)
	}
	if dep, ok := graf.DependsOn["prometheus"]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("grafana should wait for prometheus to be healthy: %+v", graf.DependsOn)
	}
	// Grafana holds no credential of ours: anonymous viewers, no admin password in the file.
	if env(t, graf, "GF_AUTH_ANONYMOUS_ORG_ROLE") != "Viewer" {
		t.Error("grafana: anonymous users must be Viewers at most")
	}
	if _, ok := graf.Environment["GF_SECURITY_ADMIN_PASSWORD"]; ok {
		t.Error("grafana: GF_SECURITY_ADMIN_PASSWORD must not be set in docker-compose.yml")
	}
}
