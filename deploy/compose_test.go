package deploy

import (
	"context"
	"encoding/base64"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// repoRoot is the repository root: the tests run in deploy/.
const repoRoot = ".."

// goServices are the repository's own Go services with their listen port.
var goServices = map[string]string{"command": "8000", "notifier": "8000", "processor": "8080", "projector": "8080"}

// composeSecrets are the variables docker-compose.yml requires (it has no default for any
// secret): what deploy/compose-secrets.sh writes to .env.
var composeSecrets = map[string]string{
	"TICKETFLOW_JWT_SECRET":            "test-jwt-f3a9c1d7e2b8a4f6c0d9e1b3a7c5f2d8",
	"POSTGRES_PASSWORD":                "owner-7c1e9a3f5b2d8c4e6a0f",
	"TICKETFLOW_COMMAND_DB_PASSWORD":   "command-2b7d9f1c3e5a8b0d4f6c",
	"TICKETFLOW_PROCESSOR_DB_PASSWORD": "processor-9e3c5a7b1d2f4e6a8c0b",
	"TICKETFLOW_PROJECTOR_DB_PASSWORD": "projector-4f8a2c6e0b1d3f5a7c9e",
	"TICKETFLOW_NOTIFIER_DB_PASSWORD":  "notifier-6d0b4f8a2c3e5b7d9f1a",
}

// dbRoles are the database roles of the services (deploy/postgres/roles.sql's defaults) and the
// variable holding each one's password.
var dbRoles = map[string]struct{ role, passwordVar string }{
	"command":   {"ticketflow_command", "TICKETFLOW_COMMAND_DB_PASSWORD"},
	"processor": {"ticketflow_processor", "TICKETFLOW_PROCESSOR_DB_PASSWORD"},
	"projector": {"ticketflow_projector", "TICKETFLOW_PROJECTOR_DB_PASSWORD"},
	"notifier":  {"ticketflow_notifier", "TICKETFLOW_NOTIFIER_DB_PASSWORD"},
}

// replicas is the multi-instance shape compose and Kubernetes both run.
var replicas = map[string]int{"command": 2, "processor": 3, "projector": 2, "notifier": 3}

// loadCompose loads docker-compose.yml as `docker compose` would, with composeSecrets plus env
// as the whole environment (no OS variables, no .env file), so defaults are what is tested.
func loadCompose(t *testing.T, env []string, profiles ...string) *types.Project {
	t.Helper()
	var all []string
	for k, v := range composeSecrets {
		all = append(all, k+"="+v)
	}
	p, err := loadComposeEnv(append(all, env...), profiles...)
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

// loadComposeEnv loads docker-compose.yml with exactly env.
func loadComposeEnv(env []string, profiles ...string) (*types.Project, error) {
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(repoRoot, "docker-compose.yml")},
		cli.WithWorkingDirectory(repoRoot),
		cli.WithEnv(env),
		cli.WithDiscardEnvFile,
		cli.WithProfiles(profiles),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

func env(t *testing.T, s types.ServiceConfig, name string) string {
	t.Helper()
	v, ok := s.Environment[name]
	if !ok || v == nil {
		t.Fatalf("service %s: no %s in its environment", s.Name, name)
	}
	return *v
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t, nil)
	want := []string{"command", "db-roles", "grafana", "jaeger", "kafka", "kafka-init", "migrate", "notifier", "postgres", "processor", "projector", "prometheus", "web"}
	if got := p.ServiceNames(); !slices.Equal(sorted(got), want) {
		t.Fatalf("services started by `up`: got %v, want %v", sorted(got), want)
	}
	if _, ok := p.DisabledServices["cli"]; !ok {
		t.Error("the cli service should exist behind a profile, not start with `up`")
	}
	withTools := loadCompose(t, nil, "tools")
	if _, err := withTools.GetService("cli"); err != nil {
		t.Errorf("cli with the tools profile: %v", err)
	}
	for _, name := range []string{"kafka-data", "postgres-data", "prometheus-data", "grafana-data"} {
		if _, ok := p.Volumes[name]; !ok {
			t.Errorf("named volume %s is not declared", name)
		}
	}
}

// TestComposeBuilds checks that each image of ours is built from this repository by the right
// Dockerfile, and that SERVICE names a module that exists.
func TestComposeBuilds(t *testing.T) {
	p := loadCompose(t, nil, "tools")
	absRoot, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	binaries := map[string]string{"command": "command", "notifier": "notifier", "processor": "processor", "projector": "projector", "migrate": "ticketflow"}
	for svc, bin := range binaries {
		s, err := p.GetService(svc)
		if err != nil {
			t.Fatal(err)
		}
		if s.Image != "ticketflow/"+bin+":dev" {
			t.Errorf("%s: image %q, want ticketflow/%s:dev", svc, s.Image, bin)
		}
		if s.Build == nil {
			t.Fatalf("%s: no build section", svc)
		}
		if s.Build.Context != absRoot {
			t.Errorf("%s: build context %q, want the repository root %q", svc, s.Build.Context, absRoot)
		}
		if df := s.Build.Dockerfile; df != "Dockerfile" && df != filepath.Join(absRoot, "Dockerfile") {
			t.Errorf("%s: dockerfile %q, want the root Dockerfile", svc, df)
		}
		arg := s.Build.Args["SERVICE"]
		if arg == nil || *arg != bin {
			got := "<unset>"
			if arg != nil {
				got = *arg
			}
			t.Errorf("%s: build arg SERVICE = %q, want %q", svc, got, bin)
			continue
		}
		if !fileExists(filepath.Join(repoRoot, "services", bin, "go.mod")) && !fileExists(filepath.Join(repoRoot, "cmd", bin, "go.mod")) {
			t.Errorf("%s: SERVICE=%s names neither services/%[2]s nor cmd/%[2]s", svc, bin)
		}
		wantTarget := ""
		if svc == "processor" {
			wantTarget = "processor" // Debian with git, bubblewrap and sh
		}
		if s.Build.Target != wantTarget {
			t.Errorf("%s: build target %q, want %q", svc, s.Build.Target, wantTarget)
		}
	}
	cliSvc, _ := p.GetService("cli")
	if cliSvc.Image != "ticketflow/ticketflow:dev" {
		t.Errorf("cli: image %q, want the migrate image ticketflow/ticketflow:dev", cliSvc.Image)
	}
	web, _ := p.GetService("web")
	if web.Build == nil || web.Build.Context != absRoot || !strings.HasSuffix(web.Build.Dockerfile, "frontend/Dockerfile") {
		t.Errorf("web: build %+v, want frontend/Dockerfile from the repository root", web.Build)
	}
	if !fileExists(filepath.Join(repoRoot, "frontend", "Dockerfile")) {
		t.Error("frontend/Dockerfile is missing")
	}
}

// TestComposeHealthAndOrder checks healthchecks and start order: every long-running service has a
// healthcheck, every one-shot job exits, and each dependency condition can be met.
func TestComposeHealthAndOrder(t *testing.T) {
	p := loadCompose(t, nil)
	oneShot := map[string]bool{"kafka-init": true, "migrate": true, "db-roles": true}
	for name, s := range p.Services {
		if oneShot[name] {
			if s.Restart != "no" {
				t.Errorf("%s is a one-shot job: restart %q, want \"no\"", name, s.Restart)
			}
			continue
		}
		if s.HealthCheck == nil || len(s.HealthCheck.Test) < 2 || s.HealthCheck.Disable {
			t.Errorf("%s: no healthcheck", name)
		}
		if s.Restart != "unless-stopped" {
			t.Errorf("%s: restart %q, want unless-stopped", name, s.Restart)
		}
		for dep, d := range s.DependsOn {
			target, err := p.GetService(dep)
			if err != nil {
				t.Errorf("%s depends on unknown service %s", name, dep)
				continue
			}
			switch d.Condition {
			case types.ServiceConditionHealthy:
				if target.HealthCheck == nil {
					t.Errorf("%s waits for %s to be healthy, which has no healthcheck", name, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if !oneShot[dep] {
					t.Errorf("%s waits for %s to complete, which is not a one-shot job", name, dep)
				}
			default:
				t.Errorf("%s -> %s: condition %q; want service_healthy or service_completed_successfully", name, dep, d.Condition)
			}
		}
	}
	wantDeps := map[string]map[string]string{
		"kafka-init": {"kafka": types.ServiceConditionHealthy},
		"migrate":    {"postgres": types.ServiceConditionHealthy},
		"db-roles":   {"migrate": types.ServiceConditionCompletedSuccessfully},
		"web":        {"command": types.ServiceConditionHealthy, "notifier": types.ServiceConditionHealthy},
	}
	for svc := range goServices {
		wantDeps[svc] = map[string]string{"kafka-init": types.ServiceConditionCompletedSuccessfully, "db-roles": types.ServiceConditionCompletedSuccessfully}
	}
	for svc, deps := range wantDeps {
		s, _ := p.GetService(svc)
		if len(s.DependsOn) != len(deps) {
			t.Errorf("%s depends on %v, want %v", svc, s.DependsOn, deps)
		}
		for dep, cond := range deps {
			if got := s.DependsOn[dep].Condition; got != cond {
				t.Errorf("%s -> %s: condition %q, want %q", svc, dep, got, cond)
			}
		}
	}
	// The Go services are distroless: their healthcheck must be the bundled binary, on their port.
	for svc, port := range goServices {
		s, _ := p.GetService(svc)
		addr := env(t, s, "TICKETFLOW_HTTP_ADDR")
		if _, p, err := net.SplitHostPort(addr); err != nil || p != port {
			t.Errorf("%s: TICKETFLOW_HTTP_ADDR %q, want port %s", svc, addr, port)
		}
		if host, _, _ := net.SplitHostPort(addr); host != "" && host != "0.0.0.0" {
			t.Errorf("%s: TICKETFLOW_HTTP_ADDR %q listens on %q only; the healthcheck and other containers cannot reach it", svc, addr, host)
		}
		want := []string{"CMD", "/usr/local/bin/healthcheck", "http://127.0.0.1:" + port + "/readyz"}
		if !slices.Equal(s.HealthCheck.Test, want) {
			t.Errorf("%s: healthcheck %v, want %v", svc, s.HealthCheck.Test, want)
		}
	}
}

func TestComposeKafka(t *testing.T) {
	p := loadCompose(t, nil)
	k, _ := p.GetService("kafka")
	if !strings.HasPrefix(k.Image, "apache/kafka:") {
		t.Errorf("kafka image %q, want apache/kafka", k.Image)
	}
	if roles := env(t, k, "KAFKA_PROCESS_ROLES"); !strings.Contains(roles, "controller") || !strings.Contains(roles, "broker") {
		t.Errorf("KAFKA_PROCESS_ROLES %q: want KRaft combined broker,controller", roles)
	}
	if id, err := base64.RawURLEncoding.DecodeString(env(t, k, "CLUSTER_ID")); err != nil || len(id) != 16 {
		t.Errorf("CLUSTER_ID must be a base64url UUID (16 bytes): %v, %d bytes", err, len(id))
	}
	protocols := map[string]bool{}
	for _, kv := range strings.Split(env(t, k, "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"), ",") {
		name, _, _ := strings.Cut(kv, ":")
		protocols[name] = true
	}
	listeners := parseListeners(t, env(t, k, "KAFKA_LISTENERS"))
	advertised := parseListeners(t, env(t, k, "KAFKA_ADVERTISED_LISTENERS"))
	for name := range listeners {
		if !protocols[name] {
			t.Errorf("listener %s has no security protocol", name)
		}
	}
	for name, hp := range advertised {
		if _, ok := listeners[name]; !ok {
			t.Errorf("advertised listener %s is not a listener", name)
		}
		if _, port, _ := net.SplitHostPort(hp); port != portOf(t, listeners[name]) {
			t.Errorf("listener %s advertises port %s but listens on %s", name, port, listeners[name])
		}
	}
	ctrl := env(t, k, "KAFKA_CONTROLLER_LISTENER_NAMES")
	if _, ok := listeners[ctrl]; !ok {
		t.Errorf("controller listener %s is not a listener", ctrl)
	}
	voter := env(t, k, "KAFKA_CONTROLLER_QUORUM_VOTERS")
	if want := env(t, k, "KAFKA_NODE_ID") + "@kafka:" + portOf(t, listeners[ctrl]); voter != want {
		t.Errorf("quorum voters %q, want %q", voter, want)
	}
	// Containers reach the inter-broker listener by the service name; the host reaches a listener
	// advertised as localhost on a published port.
	inter := env(t, k, "KAFKA_INTER_BROKER_LISTENER_NAME")
	if advertised[inter] != "kafka:9092" {
		t.Errorf("inter-broker listener %s advertised as %q, want kafka:9092", inter, advertised[inter])
	}
	hostReachable := false
	for _, hp := range advertised {
		host, port, _ := net.SplitHostPort(hp)
		if host == "localhost" && slices.ContainsFunc(k.Ports, func(pc types.ServicePortConfig) bool {
			return pc.Published == port && portString(pc.Target) == port
		}) {
			hostReachable = true
		}
	}
	if !hostReachable {
		t.Error("no listener is advertised as localhost on a published port: host clients cannot connect")
	}
	logDir := env(t, k, "KAFKA_LOG_DIRS")
	if !hasNamedVolume(k, "kafka-data", logDir) {
		t.Errorf("kafka log dir %s is not on the kafka-data volume", logDir)
	}
	if env(t, k, "KAFKA_AUTO_CREATE_TOPICS_ENABLE") != "false" {
		t.Error("topic auto-creation should be off: kafka-init creates the topic with its partition count")
	}

	init, _ := p.GetService("kafka-init")
	cmd := strings.Join(init.Command, " ")
	for _, want := range []string{"kafka-topics.sh", "--bootstrap-server kafka:9092", "--create", "--if-not-exists", "--topic ticket-events", "--partitions 12"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("kafka-init command %q lacks %q", cmd, want)
		}
	}
}

func TestComposePostgres(t *testing.T) {
	p := loadCompose(t, nil)
	pg, _ := p.GetService("postgres")
	if !strings.HasPrefix(pg.Image, "postgres:15") {
		t.Errorf("postgres image %q, want postgres:15", pg.Image)
	}
	if !hasNamedVolume(pg, "postgres-data", "/var/lib/postgresql/data") {
		t.Error("postgres data is not on the postgres-data volume")
	}
	for _, port := range pg.Ports {
		if port.HostIP != "127.0.0.1" {
			t.Errorf("postgres published on %q: keep it on 127.0.0.1", port.HostIP)
		}
	}
}

// TestComposeEnvironment checks that every service gets the variables it reads, and that they
// agree with the infrastructure they point at.
func TestComposeEnvironment(t *testing.T) {
	p := loadCompose(t, nil)
	pg, _ := p.GetService("postgres")
	initSvc, _ := p.GetService("kafka-init")
	topicArgs := strings.Join(initSvc.Command, " ")
	for svc := range goServices {
		s, _ := p.GetService(svc)
		if got := env(t, s, "KAFKA_BROKERS"); got != "kafka:9092" {
			t.Errorf("%s: KAFKA_BROKERS %q, want kafka:9092", svc, got)
		}
		if topic := env(t, s, "KAFKA_TOPIC"); !strings.Contains(topicArgs, "--topic "+topic) {
			t.Errorf("%s: KAFKA_TOPIC %q is not the topic kafka-init creates", svc, topic)
		}
		if parts := env(t, s, "KAFKA_PARTITIONS"); !strings.Contains(topicArgs, "--partitions "+parts) {
			t.Errorf("%s: KAFKA_PARTITIONS %q differs from kafka-init", svc, parts)
		}
		if env(t, s, "TICKETFLOW_LOG_FORMAT") != "json" {
			t.Errorf("%s: TICKETFLOW_LOG_FORMAT should be json", svc)
		}
		checkServiceDatabaseURL(t, svc, env(t, s, "DATABASE_URL"), pg, composeSecrets)
	}
	m, _ := p.GetService("migrate")
	checkDatabaseURL(t, "migrate", env(t, m, "DATABASE_URL"), pg)
	checkDBRoles(t, p, pg)
	if !slices.Equal(m.Command, types.ShellCommand{"migrate"}) {
		t.Errorf("migrate runs %v, want [migrate]", m.Command)
	}

	cmd, _ := p.GetService("command")
	notif, _ := p.GetService("notifier")
	secret := env(t, cmd, "TICKETFLOW_JWT_SECRET")
	if secret != composeSecrets["TICKETFLOW_JWT_SECRET"] {
		t.Errorf("TICKETFLOW_JWT_SECRET %q is not the caller's", secret)
	}
	if env(t, notif, "TICKETFLOW_JWT_SECRET") != secret {
		t.Error("command and notifier must share TICKETFLOW_JWT_SECRET")
	}
	// The browser's origin is the published web port: the notifier must accept it.
	web, _ := p.GetService("web")
	if len(web.Ports) != 1 || web.Ports[0].Target != 8080 {
		t.Fatalf("web ports %+v, want one port to nginx's 8080", web.Ports)
	}
	origin := "http://localhost:" + web.Ports[0].Published
	for _, s := range []types.ServiceConfig{cmd, notif} {
		if origins := strings.Split(env(t, s, "TICKETFLOW_ALLOWED_ORIGINS"), ","); !slices.Contains(origins, origin) {
			t.Errorf("%s: TICKETFLOW_ALLOWED_ORIGINS %v lacks the web origin %s", s.Name, origins, origin)
		}
	}

	proc, _ := p.GetService("processor")
	if ex := env(t, proc, "TICKETFLOW_EXECUTOR"); ex != "real" && ex != "simulated" {
		t.Errorf("processor: TICKETFLOW_EXECUTOR %q, want real or simulated", ex)
	}
	// One work directory per replica: an anonymous volume, never a named one all replicas share.
	wd := env(t, proc, "TICKETFLOW_WORK_DIR")
	if !slices.ContainsFunc(proc.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && v.Source == "" && v.Target == wd
	}) {
		t.Errorf("processor: work dir %s is not on an anonymous (per-replica) volume: %+v", wd, proc.Volumes)
	}
	for _, k := range []string{"ANTHROPIC_API_KEY", "OPENAI_API_KEY"} {
		if v := env(t, proc, k); v != "" {
			t.Errorf("processor: %s defaults to %q; it must come from the caller's environment only", k, v)
		}
	}
}

// TestComposeOverrides checks that the documented variables flow through interpolation.
func TestComposeOverrides(t *testing.T) {
	p := loadCompose(t, []string{
		"TICKETFLOW_JWT_SECRET=an-operator-chosen-secret-of-enough-length",
		"KAFKA_PARTITIONS=24",
		"TICKETFLOW_EXECUTOR=real",
		"TICKETFLOW_TAG=1.2.3",
		"POSTGRES_PASSWORD=s3cret-owner-password",
		"TICKETFLOW_PROJECTOR_DB_PASSWORD=operator-projector-password",
		"ANTHROPIC_API_KEY=sk-test",
	})
	cmd, _ := p.GetService("command")
	if got := env(t, cmd, "TICKETFLOW_JWT_SECRET"); got != "an-operator-chosen-secret-of-enough-length" {
		t.Errorf("JWT secret override not applied: %q", got)
	}
	if cmd.Image != "ticketflow/command:1.2.3" {
		t.Errorf("tag override not applied: %q", cmd.Image)
	}
	proc, _ := p.GetService("processor")
	if env(t, proc, "KAFKA_PARTITIONS") != "24" || env(t, proc, "TICKETFLOW_EXECUTOR") != "real" || env(t, proc, "ANTHROPIC_API_KEY") != "sk-test" {
		t.Errorf("processor overrides not applied: %v", proc.Environment)
	}
	init, _ := p.GetService("kafka-init")
	if !strings.Contains(strings.Join(init.Command, " "), "--partitions 24") {
		t.Errorf("kafka-init ignores KAFKA_PARTITIONS: %v", init.Command)
	}
	pg, _ := p.GetService("postgres")
	m, _ := p.GetService("migrate")
	checkDatabaseURL(t, "migrate", env(t, m, "DATABASE_URL"), pg)
	if env(t, pg, "POSTGRES_PASSWORD") != "s3cret-owner-password" {
		t.Error("POSTGRES_PASSWORD override not applied")
	}
	proj, _ := p.GetService("projector")
	if u, err := url.Parse(env(t, proj, "DATABASE_URL")); err != nil || !strings.Contains(u.String(), ":operator-projector-password@") {
		t.Errorf("projector: DATABASE_URL does not carry TICKETFLOW_PROJECTOR_DB_PASSWORD: %v", err)
	}
}

// checkServiceDatabaseURL checks that a service's dsn reaches the compose postgres service's
// database as the service's own role, with the password of its variable.
func checkServiceDatabaseURL(t *testing.T, svc, dsn string, pg types.ServiceConfig, secrets map[string]string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("%s: DATABASE_URL %q: %v", svc, dsn, err)
	}
	pass, _ := u.User.Password()
	want := dbRoles[svc]
	if u.Scheme != "postgres" || u.Hostname() != pg.Name || u.Port() != "5432" || strings.TrimPrefix(u.Path, "/") != env(t, pg, "POSTGRES_DB") {
		t.Errorf("%s: DATABASE_URL %q does not reach the postgres service's database", svc, dsn)
	}
	if u.User.Username() != want.role || pass != secrets[want.passwordVar] {
		t.Errorf("%s: DATABASE_URL connects as %q; want its own role %s with %s", svc, u.User.Username(), want.role, want.passwordVar)
	}
	if u.User.Username() == env(t, pg, "POSTGRES_USER") {
		t.Errorf("%s connects as the schema owner", svc)
	}
}

// checkDBRoles checks the db-roles job: roles.sql from the repository, run with psql as the
// owner, with every service's password.
func checkDBRoles(t *testing.T, p *types.Project, pg types.ServiceConfig) {
	t.Helper()
	r, err := p.GetService("db-roles")
	if err != nil {
		t.Fatal(err)
	}
	if r.Image != pg.Image {
		t.Errorf("db-roles image %q, want the postgres image %q (its psql)", r.Image, pg.Image)
	}
	absSQL, _ := filepath.Abs(filepath.Join(repoRoot, "deploy", "postgres", "roles.sql"))
	mounted := ""
	for _, v := range r.Volumes {
		if v.Type == types.VolumeTypeBind && v.Source == absSQL && v.ReadOnly {
			mounted = v.Target
		}
	}
	if mounted == "" {
		t.Fatalf("db-roles does not mount deploy/postgres/roles.sql read-only: %+v", r.Volumes)
	}
	if cmd := strings.Join(r.Command, " "); !strings.HasPrefix(cmd, "psql ") || !strings.Contains(cmd, "ON_ERROR_STOP=1") || !strings.Contains(cmd, "-f "+mounted) {
		t.Errorf("db-roles runs %q; want psql -v ON_ERROR_STOP=1 -f %s", cmd, mounted)
	}
	if env(t, r, "PGHOST") != pg.Name || env(t, r, "PGUSER") != env(t, pg, "POSTGRES_USER") || env(t, r, "PGPASSWORD") != env(t, pg, "POSTGRES_PASSWORD") || env(t, r, "PGDATABASE") != env(t, pg, "POSTGRES_DB") {
		t.Error("db-roles must connect to the postgres service's database as its owner")
	}
	for svc, want := range dbRoles {
		if env(t, r, want.passwordVar) != composeSecrets[want.passwordVar] {
			t.Errorf("db-roles: %s (the password of %s) is not passed", want.passwordVar, svc)
		}
	}
}

// checkDatabaseURL checks that dsn reaches the compose postgres service with its credentials.
func checkDatabaseURL(t *testing.T, svc, dsn string, pg types.ServiceConfig) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("%s: DATABASE_URL %q: %v", svc, dsn, err)
	}
	pass, _ := u.User.Password()
	if u.Scheme != "postgres" || u.Hostname() != pg.Name || u.Port() != "5432" ||
		u.User.Username() != env(t, pg, "POSTGRES_USER") || pass != env(t, pg, "POSTGRES_PASSWORD") ||
		strings.TrimPrefix(u.Path, "/") != env(t, pg, "POSTGRES_DB") {
		t.Errorf("%s: DATABASE_URL %q does not match the postgres service's user, password, database", svc, dsn)
	}
}

func parseListeners(t *testing.T, s string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range strings.Split(s, ",") {
		name, hp, ok := strings.Cut(l, "://")
		if !ok {
			t.Fatalf("listener %q is not NAME://host:port", l)
		}
		out[name] = hp
	}
	return out
}

func portOf(t *testing.T, hostPort string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		t.Fatalf("%q: %v", hostPort, err)
	}
	return port
}

func portString(p uint32) string { return strconv.FormatUint(uint64(p), 10) }

func hasNamedVolume(s types.ServiceConfig, volume, target string) bool {
	return slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && v.Source == volume && v.Target == target
	})
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
